#!/usr/bin/env bash
# Print the path of a working Python interpreter for one of lorsp's two environments, or one line on
# stderr and exit 2.
#   scripts/find_python.sh main   the newest of 3.13, 3.12, 3.11, 3.10 (every dependency supports these)
#   scripts/find_python.sh lava   3.10 (lava-nc 0.10 and lava-dl 0.6, the last releases, support no other)
# Order for each version: $PYTHON (main) or $PYTHON_LAVA (lava) when set, pythonX.Y on PATH (if it
# actually runs), then pyenv's versions folder.
set -u
case "${1:-}" in
  main) versions="3.13 3.12 3.11 3.10"; override="${PYTHON:-}"; var=PYTHON ;;
  lava) versions="3.10"; override="${PYTHON_LAVA:-}"; var=PYTHON_LAVA ;;
  *) echo "usage: scripts/find_python.sh main|lava" >&2; exit 2 ;;
esac
is() { "$1" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$2' else 1)" >/dev/null 2>&1; }
if [ -n "$override" ]; then
  for v in $versions; do if is "$override" "$v"; then echo "$override"; exit 0; fi; done
  echo "error: $var=$override is not a working Python $(echo $versions | sed 's/ /, /g')" >&2; exit 2
fi
root="${PYENV_ROOT:-}"
[ -n "$root" ] || root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
for v in $versions; do
  if command -v "python$v" >/dev/null 2>&1 && is "python$v" "$v"; then command -v "python$v"; exit 0; fi
  for cand in "$root"/versions/"$v".*/bin/"python$v"; do
    if [ -x "$cand" ] && is "$cand" "$v"; then echo "$cand"; exit 0; fi
  done
done
echo "error: the $1 environment needs Python $(echo $versions | sed 's/ /, /g'); install one (e.g. 'pyenv install ${versions%% *}') or set $var=/path/to/python" >&2
exit 2
