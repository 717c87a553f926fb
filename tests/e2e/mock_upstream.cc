#include <httplib.h>
int main() { return 0; }
