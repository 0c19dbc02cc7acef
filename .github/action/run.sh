#!/usr/bin/env bash
# Run one branchwise task headless from the action's inputs (INPUT_* variables; none is ever evaluated by a
# shell) and keep what the report and the artifact need under $BW_ACTION_OUT (default $RUNNER_TEMP/branchwise).
set -uo pipefail
out="${BW_ACTION_OUT:-${RUNNER_TEMP:-/tmp}/branchwise}"
mkdir -p "$out/artifact"
args=(run -o json)
[ -n "${INPUT_TASK_FILE:-}" ] && args+=(-f "$INPUT_TASK_FILE")
[ -n "${INPUT_MODEL:-}" ] && args+=(--model "$INPUT_MODEL")
[ -n "${INPUT_SEARCH:-}" ] && args+=(--search "$INPUT_SEARCH")
[ -n "${INPUT_MAX_COST:-}" ] && args+=(--max-cost "$INPUT_MAX_COST")
[ -n "${INPUT_MAX_STEPS:-}" ] && args+=(--max-steps "$INPUT_MAX_STEPS")
[ -n "${INPUT_APPROVAL:-}" ] && args+=(--approval "$INPUT_APPROVAL")
while IFS= read -r line; do
  [ -n "${line// /}" ] && args+=(--param "$line")
done <<< "${INPUT_PARAMS:-}"
bw="${BW_ACTION_BIN:-branchwise}"
if [ -n "${INPUT_TASK:-}" ]; then
  printf '%s' "$INPUT_TASK" | "$bw" "${args[@]}" - > "$out/result.json" 2> "$out/artifact/stderr.log"
else
  "$bw" "${args[@]}" < /dev/null > "$out/result.json" 2> "$out/artifact/stderr.log"
fi
code=$?
echo "$code" > "$out/exit_code"
cat "$out/artifact/stderr.log" >&2
cp "$out/result.json" "$out/artifact/result.json"
run_id="$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]).get("run_id") or "")' "$out/result.json" 2>/dev/null)"
if [ -n "$run_id" ] && [ -d ".branchwise/runs/$run_id" ]; then
  cp -r ".branchwise/runs/$run_id" "$out/artifact/run-$run_id"
  "$bw" tree "$run_id" --html "$out/artifact/tree.html" >/dev/null 2>&1 || true  # only runs with a search have one
fi
exit 0  # the action's last step exits with the run's code
