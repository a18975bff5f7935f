#!/usr/bin/env bash
# A CD pipeline's deployment through Release Control: register the deployment, wait for its
# go (polling, honouring Retry-After), deploy, run the smoke tests, report the outcome.
#
# Needs bash, curl and jq. Configuration (environment variables):
#   RELEASE_CONTROL_URL    e.g. https://release-control.example.com (no trailing slash)
#   RELEASE_CONTROL_TOKEN  the pipeline's personal API token (an agent account)
#   ENVIRONMENT SERVICE VERSION COMMIT COMMIT_TIME ARTIFACT   what is deployed where
#   DEPLOY_COMMAND         the deployment itself (run with bash -c)
#   SMOKE_COMMAND          optional: the smoke tests; its last line is "PASSED FAILED" (counts)
#   KIND                   standard (default) or emergency
#   NOTES                  optional text for the history
#   MAX_WAIT_SECONDS       how long to wait for the go (default 3600)
# Exit codes: 0 deployed and succeeded; 1 deployment or smoke tests failed (reported);
# 2 refused by Release Control (the reason is printed); 3 no go (rejected, expired,
# cancelled, or no go within MAX_WAIT_SECONDS).
set -euo pipefail

: "${RELEASE_CONTROL_URL:?}" "${RELEASE_CONTROL_TOKEN:?}" "${ENVIRONMENT:?}" "${SERVICE:?}"
: "${VERSION:?}" "${COMMIT:?}" "${COMMIT_TIME:?}" "${ARTIFACT:?}" "${DEPLOY_COMMAND:?}"
KIND=${KIND:-standard}
NOTES=${NOTES:-}
MAX_WAIT_SECONDS=${MAX_WAIT_SECONDS:-3600}
API="$RELEASE_CONTROL_URL/api/v1"
BODY=$(mktemp)
HEADERS=$(mktemp)
trap 'rm -f "$BODY" "$HEADERS"' EXIT

say() { echo "release-control: $*" >&2; }

# call METHOD PATH [JSON] [extra curl args...]: the status code on stdout, the body in $BODY,
# the response headers in $HEADERS.
call() {
    local method=$1 path=$2 data=${3:-}
    shift 3 || shift $#
    local args=(-sS -o "$BODY" -D "$HEADERS" -w '%{http_code}' -X "$method"
        -H "Authorization: Bearer $RELEASE_CONTROL_TOKEN" -H "Content-Type: application/json")
    if [[ -n $data ]]; then args+=(--data "$data"); fi
    curl "${args[@]}" "$@" "$API$path"
}

refused() {
    say "refused ($1): $(jq -r '.error + ": " + .detail' "$BODY" 2>/dev/null || cat "$BODY")"
    exit 2
}

report() { # report EVENT DETAIL [PASSED FAILED]
    local smoke=null
    if [[ $# -ge 4 ]]; then
        smoke=$(jq -n --argjson p "$3" --argjson f "$4" '{passed: $p, failed: $f}')
    fi
    local status
    status=$(call POST "/deployments/$ID/events" \
        "$(jq -n --arg e "$1" --arg d "$2" --argjson s "$smoke" '{event: $e, detail: $d, smoke_tests: $s}')")
    [[ $status == 200 ]] || refused "$status"
    say "reported $1"
}

# 1. Register (the same key answers the same deployment if this step is retried).
registration=$(jq -n --arg environment "$ENVIRONMENT" --arg service "$SERVICE" \
    --arg version "$VERSION" --arg commit "$COMMIT" --arg commit_time "$COMMIT_TIME" \
    --arg artifact "$ARTIFACT" --arg kind "$KIND" --arg notes "$NOTES" \
    '{environment: $environment, service: $service, version: $version, commit: $commit,
      commit_time: $commit_time, artifact: $artifact, kind: $kind, notes: $notes}')
status=$(call POST /deployments "$registration" \
    -H "Idempotency-Key: $ENVIRONMENT-$SERVICE-$VERSION-$COMMIT")
[[ $status == 201 ]] || refused "$status"
ID=$(jq -r .id "$BODY")
say "deployment $ID registered: $(jq -r .status "$BODY")"

# 2. Wait for the go: ask again after Retry-After seconds, never faster.
deadline=$((SECONDS + MAX_WAIT_SECONDS))
while :; do
    state=$(jq -r .status "$BODY")
    case $state in
    go) break ;;
    awaiting_approval) ;;
    *)
        say "deployment $ID is $state: not deploying"
        exit 3
        ;;
    esac
    wait=$(tr -d '\r' <"$HEADERS" | awk -F': ' 'tolower($1) == "retry-after" {print $2}')
    wait=${wait:-10}
    if ((SECONDS + wait > deadline)); then
        say "no go within ${MAX_WAIT_SECONDS}s (request #$(jq -r .approval "$BODY")): not deploying"
        exit 3
    fi
    say "awaiting approval (request #$(jq -r .approval "$BODY")); asking again in ${wait}s"
    sleep "$wait"
    status=$(call GET "/deployments/$ID")
    [[ $status == 200 ]] || refused "$status"
done
say "go given by $(jq -r .executed_by "$BODY")"

# 3. Deploy, then the smoke tests; report what happened.
report started "deploying $SERVICE $VERSION"
if ! bash -c "$DEPLOY_COMMAND"; then
    report failed "the deployment command failed"
    exit 1
fi
passed=0 failed=0
if [[ -n ${SMOKE_COMMAND:-} ]]; then
    smoke_exit=0
    smoke_out=$(bash -c "$SMOKE_COMMAND") || smoke_exit=$?
    read -r passed failed <<<"$(tail -n 1 <<<"$smoke_out")"
    passed=${passed:-0} failed=${failed:-0}
    if ((smoke_exit != 0 && failed == 0)); then failed=1; fi
fi
if ((failed > 0)); then
    report failed "smoke tests failed" "$passed" "$failed"
    exit 1
fi
report succeeded "deployed; smoke tests passed" "$passed" "$failed"
