#!/usr/bin/env bash
# Run the JavaScript sandbox's tests against several mini-racer versions.
#
#   bench/mini_racer_versions.sh [VERSION ...]        (default: 0.12.4 0.14.1)
#
# Why: the sandbox must hold whatever mini-racer does wrong, and mini-racer's behaviour changes between releases
# (the in-process design segfaulted with 0.12.4 to 0.14.1). This runs tests/embedded_engine/test_js.py,
# the BPMN tests (tests/embedded_engine/bpmn/) and test_hostile_models.py once per version.
#
# How: a venv per version in .data/mini-racer-VERSION (git-ignored) that holds only that mini-racer; everything
# else (the project, pytest, SpiffWorkflow, ...) comes from the project's .venv through a .pth file, so a version
# costs one wheel download and no full install. The sandbox's worker processes and the engine under test are
# started with sys.executable, that venv's python, so they run the same mini-racer. A venv is reused while it
# still holds its version. Each run's output goes to .data/mini-racer-VERSION.log; one line per version is
# printed, and the exit status is non-zero when any version failed.
set -euo pipefail
cd "$(dirname "$0")/.."

versions=("$@")
if [ ${#versions[@]} -eq 0 ]; then
  versions=(0.12.4 0.14.1)
fi
project_python=.venv/bin/python
if [ ! -x "$project_python" ]; then
  echo "mini_racer_versions: no .venv here; create the project's virtualenv first" >&2
  exit 2
fi
base_python=$("$project_python" -c 'import os, sys; print(os.path.join(sys.base_prefix, "bin", "python3"))')
project_site=$("$project_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
tests=(tests/embedded_engine/test_js.py tests/embedded_engine/bpmn tests/embedded_engine/test_hostile_models.py)
loaded='import importlib.metadata, py_mini_racer; print(importlib.metadata.version("mini-racer"), py_mini_racer.__file__)'

mkdir -p .data
failed=0
summary=()
for version in "${versions[@]}"; do
  venv=.data/mini-racer-$version
  if [ "$("$venv/bin/python" -c "$loaded" 2>/dev/null | cut -d' ' -f1)" != "$version" ]; then
    rm -rf "$venv"
    "$base_python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "mini-racer==$version"
    venv_site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # Executed at start-up: the project venv's site-packages go after this venv's own (so its mini-racer wins),
    # with their .pth files processed (the project's editable install).
    echo "import site; site.addsitedir('$project_site')" > "$venv_site/zz_project_venv.pth"
  fi
  read -r actual location < <("$venv/bin/python" -c "$loaded")
  case "$location" in
    "$PWD/$venv"/*) ;;
    *) echo "mini_racer_versions: $venv loads mini-racer $actual from $location, not its own" >&2; exit 2 ;;
  esac
  log=.data/mini-racer-$version.log
  echo "== mini-racer $actual: ${tests[*]} (log: $log)"
  started=$SECONDS
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}" >"$log" 2>&1; then
    result=passed
  else
    result=FAILED
    failed=1
  fi
  summary+=("mini-racer $actual: $result in $((SECONDS - started)) s: $(tail -n 1 "$log" | tr -d '=' | sed 's/^ *//')")
  echo "${summary[-1]}"
done
echo
printf '%s\n' "${summary[@]}"
exit $failed
