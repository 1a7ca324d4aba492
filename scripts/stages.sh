# Stage timing for the test and CI scripts (sourced, not run).
#
#   stage "name" command args...   runs the command as a stage: prints "== name", then
#                                  "== name: ok in 12 s" (or "FAILED in 12 s" and exits
#                                  with its status)
#   stage_record "name" SECS RESULT records a stage the caller timed itself
#   stages_summary                 prints every stage with its time, and the total
#
# The summary is printed on exit too (also after a failure), so a log always ends with
# where the time went.

_stage_names=()
_stage_secs=()
_stage_results=()
_stages_t0=$SECONDS

stages_summary() {
  local i total=$((SECONDS - _stages_t0))
  echo "== stages:"
  for i in "${!_stage_names[@]}"; do
    printf '   %-66s %6s s  %s\n' "${_stage_names[$i]}" "${_stage_secs[$i]}" "${_stage_results[$i]}"
  done
  printf '   %-66s %6s s  (%d min %02d s)\n' "total" "$total" $((total / 60)) $((total % 60))
}

stage() {
  local name="$1"
  shift
  local t0=$SECONDS status=0
  echo "== $name ($(df -h . | awk 'NR==2 {print $4}') disk free)"
  # A subshell with errexit of its own: in `cmd || ...` bash would ignore `set -e` inside
  # a function stage, and run on past its first failing command.
  set +e
  (
    set -e
    "$@"
  )
  status=$?
  set -e
  local secs=$((SECONDS - t0))
  _stage_names+=("$name")
  _stage_secs+=("$secs")
  if [ "$status" -eq 0 ]; then
    _stage_results+=("ok")
    echo "== $name: ok in $secs s"
  else
    _stage_results+=("FAILED ($status)")
    echo "== $name: FAILED (exit $status) in $secs s" >&2
    exit "$status"
  fi
}

# stage_record "name" SECS RESULT: records a stage timed by the caller (one that must run in
# the calling shell, e.g. because it starts a background process the script keeps).
stage_record() {
  _stage_names+=("$1")
  _stage_secs+=("$2")
  _stage_results+=("$3")
  echo "== $1: $3 in $2 s"
}
