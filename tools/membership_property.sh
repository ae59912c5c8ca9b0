#!/usr/bin/env bash
# The trust boundary's property test (tests/it/membership.rs) over many more random
# sequences than the suite runs: five real nodes on loopback per sequence.
# Usage: tools/membership_property.sh [CASES]   (default 40)
set -euo pipefail
cd "$(dirname "$0")/.."
JALIN_MEMBERSHIP_CASES="${1:-40}" cargo test --test it -- --exact \
  membership::only_current_co_members_connect_and_share_catalogs_whatever_the_sequence
