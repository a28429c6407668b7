#!/bin/sh
# Generate the configure script; then run ./configure && make.
set -e
cd "$(dirname "$0")"
autoreconf --force --install --symlink
