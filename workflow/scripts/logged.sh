#!/usr/bin/env bash
# logged.sh LOG COMMAND...: run COMMAND with its output (stdout and stderr) in LOG. When it
# fails, its error lines (the scripts print one `error: ...` line) or else the log's last
# lines are shown on stderr too, so the terminal says why, not only where the log is.
log=$1
shift
"$@" >"$log" 2>&1 && exit 0
status=$?
grep '^error:' "$log" >&2 || tail -n 5 "$log" >&2
exit "$status"
