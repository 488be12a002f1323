#!/bin/sh
# The real image's entrypoint runs `litellm "$@"`; so does this one, with one difference: with
# DATABASE_URL set, LiteLLM needs Prisma's generated client and query engine, which this offline
# build does not have. Rather than let the proxy die connecting, drop DATABASE_URL and say so.
set -e
if [ -n "${DATABASE_URL:-}" ]; then
  echo "litellm stand-in: no Prisma engines in this offline build: starting without DATABASE_URL" >&2
  unset DATABASE_URL
fi
exec litellm "$@"
