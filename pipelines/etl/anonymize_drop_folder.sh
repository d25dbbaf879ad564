#!/usr/bin/env bash
# Cron-style ETL: de-identify every new study folder of a drop folder with cadp-med.
#
#   anonymize_drop_folder.sh DROP_DIR OUTPUT_DIR [MANIFEST]
#
# Each immediate sub-folder of DROP_DIR is one study.  A study is processed once: a
# folder named in the manifest with exit_code 0 is skipped.  Each run appends one JSON
# line per study to MANIFEST (default OUTPUT_DIR/manifest.jsonl):
#   {"study_dir": "<folder name>", "time": "...", "exit_code": N, "summary": {...}}
# The folder name is written as is: name drop folders by accession hash or ticket number,
# never by patient name.
#
# Environment:
#   CADP_MED          the cadp-med command (default: cadp-med)
#   CADP_MED_KEY      the pseudonymisation key (or pass --key-file in CADP_MED_ARGS)
#   CADP_MED_ARGS     extra arguments for `cadp-med anonymize`, e.g. "--pixels keep"
#   CADP_ALERT_HOOK   an executable run on failure as: HOOK <study folder name> <exit code>
#   MIN_AGE_MINUTES   only take folders unchanged for this long (default 5), so a
#                     study still being copied in is left for the next run
#
# Exit status: 0 when every processed study succeeded, 1 when any failed.
# Example crontab line (every 10 minutes, one run at a time):
#   */10 * * * * flock -n /run/cadp-etl.lock /opt/cadp/anonymize_drop_folder.sh /drop /deid
set -euo pipefail

drop_dir=${1:?usage: anonymize_drop_folder.sh DROP_DIR OUTPUT_DIR [MANIFEST]}
output_dir=${2:?usage: anonymize_drop_folder.sh DROP_DIR OUTPUT_DIR [MANIFEST]}
manifest=${3:-$output_dir/manifest.jsonl}
cadp=${CADP_MED:-cadp-med}
min_age=${MIN_AGE_MINUTES:-5}
read -r -a extra_args <<< "${CADP_MED_ARGS:-}"

mkdir -p "$output_dir"
touch "$manifest"
failed=0

already_done() {
    # A study is done when the manifest has a line for it with exit_code 0.
    grep -qF "\"study_dir\": \"$1\", \"time\"" "$manifest" 2>/dev/null &&
        grep -F "\"study_dir\": \"$1\", \"time\"" "$manifest" | grep -q '"exit_code": 0,'
}

alert() {
    echo "cadp-etl: study folder '$1' failed with exit code $2" >&2
    if [[ -n "${CADP_ALERT_HOOK:-}" ]]; then
        "$CADP_ALERT_HOOK" "$1" "$2" || echo "cadp-etl: alert hook failed" >&2
    fi
}

while IFS= read -r -d '' study; do
    name=$(basename "$study")
    if already_done "$name"; then
        continue
    fi
    # Skip folders that changed recently: the copy into the drop folder may be running.
    if [[ -n $(find "$study" -newermt "-${min_age} minutes" -print -quit) ]]; then
        continue
    fi
    set +e
    summary=$("$cadp" anonymize "$study" --output "$output_dir/$name" --json "${extra_args[@]}")
    code=$?
    set -e
    [[ -n "$summary" ]] || summary=null
    printf '{"study_dir": "%s", "time": "%s", "exit_code": %d, "summary": %s}\n' \
        "$name" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$code" "$(tr -d '\n' <<< "$summary")" \
        >> "$manifest"
    if [[ $code -ne 0 ]]; then
        failed=1
        alert "$name" "$code"
    fi
done < <(find "$drop_dir" -mindepth 1 -maxdepth 1 -type d -print0 | sort -z)

exit $failed
