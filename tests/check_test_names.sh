#!/bin/sh
# Fails when a doctest test case name contains ';': doctest_discover_tests splits the name there
# (a CMake list separator), and each half then matches no test case and passes without running
# anything. Usage: check_test_names.sh DOCTEST_BINARY...
bad=0
for b in "$@"; do
  if ! names=$("$b" --list-test-cases 2>&1); then
    echo "$b: cannot list its test cases"
    bad=1
    continue
  fi
  if printf '%s\n' "$names" | grep -q ';'; then
    printf '%s\n' "$names" | grep ';' | sed "s|^|$(basename "$b"): a test name with ';': |"
    bad=1
  fi
done
exit $bad
