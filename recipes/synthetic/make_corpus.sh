#!/bin/sh
# Build the offline synthetic corpus into data/synthetic (see README.md here).
# Extra arguments go to `voicevae make-corpus`, e.g. --force or --sentences 120.
set -eu
cd "$(dirname "$0")/../.."
exec voicevae make-corpus data/synthetic --jobs 2 "$@"
