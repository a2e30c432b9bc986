#!/usr/bin/env bash
# AuthZEN over HTTP with curl, on the patient-portal example: one evaluation, a batch with
# deny_on_first_deny, and the actions a patient may take on her record. Exits non-zero
# when an answer is not what the policy says.
# Usage: bash evaluate.sh [http://127.0.0.1:51051] [TOKEN]
set -euo pipefail
base=${1:-http://127.0.0.1:51051}
auth=()
if [ -n "${2:-}" ]; then auth=(-H "authorization: Bearer $2"); fi
now=$(date +%s)
context="{\"authenticated_at\": $((now - 60)), \"last_activity\": $now, \"factors\": [\"password\"]}"
post() { curl -sS --fail-with-body "${auth[@]}" -H 'content-type: application/json' "$base$1" -d "$2"; }
expect() { # what, answer, pattern
  if grep -q "$3" <<<"$2"; then echo "ok    $1: $2"; else echo "WRONG $1: $2 (wanted $3)"; exit 1; fi
}

answer=$(post /access/v1/evaluation "{
  \"subject\": {\"type\": \"user\", \"id\": \"pat-ann\"},
  \"action\": {\"name\": \"read\"},
  \"resource\": {\"type\": \"medical_record\", \"id\": \"r-1\",
                 \"properties\": {\"tenant\": \"clinic-north\", \"patient_id\": \"pat-ann\"}},
  \"context\": $context}")
expect "pat-ann reads her record" "$answer" '"decision":true'

answer=$(post /access/v1/evaluations "{
  \"subject\": {\"type\": \"user\", \"id\": \"pat-ann\"},
  \"action\": {\"name\": \"read\"},
  \"context\": $context,
  \"options\": {\"evaluations_semantic\": \"deny_on_first_deny\"},
  \"evaluations\": [
    {\"resource\": {\"type\": \"medical_record\", \"id\": \"r-1\", \"properties\": {\"patient_id\": \"pat-ann\"}}},
    {\"resource\": {\"type\": \"medical_record\", \"id\": \"r-2\", \"properties\": {\"patient_id\": \"pat-bob\"}}},
    {\"resource\": {\"type\": \"medical_record\", \"id\": \"r-3\", \"properties\": {\"patient_id\": \"pat-ann\"}}}]}")
expect "deny_on_first_deny stops at r-2" "$answer" '^{"evaluations":\[{"decision":true,"context":{[^]]*}},{"decision":false,"context":{[^]]*"reason":"no_matching_grant"[^]]*}}\]}$'

answer=$(post /access/v1/search/action "{
  \"subject\": {\"type\": \"user\", \"id\": \"pat-ann\"},
  \"resource\": {\"type\": \"medical_record\", \"id\": \"r-1\", \"properties\": {\"patient_id\": \"pat-ann\"}},
  \"context\": $context}")
# Reading is hers; exporting is critical (R8) and this session has no second factor.
expect "pat-ann's actions on r-1" "$answer" '"results":\[{"name":"read"}\]'
