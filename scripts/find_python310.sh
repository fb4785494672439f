#!/usr/bin/env bash
# Print the path of a working Python 3.10 interpreter, or one line on stderr and exit 2.
# Order: $PYTHON, python3.10 on PATH (if it actually runs), pyenv's versions folder.
set -u
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' >/dev/null 2>&1; }
if [ -n "${PYTHON:-}" ]; then
  if ok "$PYTHON"; then echo "$PYTHON"; exit 0; fi
  echo "error: PYTHON=$PYTHON is not a working Python 3.10 interpreter" >&2; exit 2
fi
if command -v python3.10 >/dev/null 2>&1 && ok python3.10; then command -v python3.10; exit 0; fi
root="${PYENV_ROOT:-}"
[ -n "$root" ] || root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
for cand in "$root"/versions/3.10*/bin/python3.10; do
  if [ -x "$cand" ] && ok "$cand"; then echo "$cand"; exit 0; fi
done
echo "error: lorsp needs Python 3.10 (Lava supports no other); install it (e.g. 'pyenv install 3.10') or set PYTHON=/path/to/python3.10" >&2
exit 2
