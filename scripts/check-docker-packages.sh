#!/usr/bin/env bash
# Fails when the Dockerfile installs software other than through scripts/install-deps.sh, the
# one package list the README's install step uses too, so the image and a bare-metal build can
# never drift apart. Run by scripts/test.sh.
# Usage: scripts/check-docker-packages.sh [DOCKERFILE]   (default: Dockerfile)
set -euo pipefail
cd "$(dirname "$0")/.."
dockerfile=${1:-Dockerfile}
[ -f "$dockerfile" ] || { echo "check-docker-packages: $dockerfile not found" >&2; exit 1; }

# One logical instruction per line: comments dropped, backslash continuations joined; each line
# is prefixed with the line number the instruction starts on.
instructions=$(awk '
  /^[[:space:]]*#/ { next }
  {
    if (cont == "") start = NR
    line = $0
    if (sub(/\\[[:space:]]*$/, "", line)) { cont = cont line " "; next }
    print start ": " cont line
    cont = ""
  }
  END { if (cont != "") print start ": " cont }
' "$dockerfile")

status=0
fail() {
  echo "check-docker-packages: $dockerfile:$1" >&2
  status=1
}

# Package managers and downloaders in command position (after start, whitespace, ; & | or
# `(`), so paths such as /var/lib/apt/lists do not count.
installers='(^|[[:space:];&|(])(apt-get|apt|aptitude|dpkg|apk|yum|dnf|microdnf|zypper|pip|pip3|pipx|npm|yarn|gem|cargo|go|curl|wget)([[:space:]]|$)'
while IFS= read -r entry; do
  [ -n "$entry" ] || continue
  lineno=${entry%%:*}
  text=${entry#*: }
  keyword=$(printf '%s\n' "$text" | awk '{ print toupper($1) }')
  case "$keyword" in
    RUN)
      cmd=${text#*[Rr][Uu][Nn]}
      if printf '%s\n' "$cmd" | grep -Eq "$installers"; then
        tool=$(printf '%s\n' "$cmd" | grep -Eo "$installers" | head -n 1 | tr -d ' ;&|(')
        fail "$lineno: RUN uses '$tool'; install packages with scripts/install-deps.sh (build|runtime|test) only"
      fi
      ;;
    ADD)
      if printf '%s\n' "$text" | grep -Eq '(https?|git)://|git@'; then
        fail "$lineno: ADD fetches from the network; packages come from scripts/install-deps.sh only"
      fi
      ;;
  esac
done <<<"$instructions"

# Both stages must install their packages from the script.
grep -Eq '^[0-9]+: RUN .*install-deps\.sh build' <<<"$instructions" ||
  fail " the build stage does not run 'scripts/install-deps.sh build'"
grep -Eq '^[0-9]+: RUN .*install-deps\.sh runtime' <<<"$instructions" ||
  fail " the runtime stage does not run 'install-deps.sh runtime'"

if [ "$status" -eq 0 ]; then
  echo "check-docker-packages: $dockerfile installs packages only through scripts/install-deps.sh"
fi
exit "$status"
