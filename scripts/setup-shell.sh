# ami-streams shell integration for bash and zsh. Source it:  source /path/to/ami-streams/scripts/setup-shell.sh
# Defines the seed's functions and aliases; each calls the ami-streams CLI (found next to this script, so it
# works from any directory) with your arguments. Commands for capabilities that are not built yet fail with
# a message naming what is missing (exit code 4) instead of pretending.

if [ -n "${ZSH_VERSION:-}" ]; then
  # zsh: %x is the file being sourced. eval keeps bash from parsing zsh-only syntax.
  eval '_ami_streams_src="${(%):-%x}"'
else
  _ami_streams_src="${BASH_SOURCE[0]:-$0}"
fi
AMI_STREAMS_ROOT="$(cd "$(dirname "$_ami_streams_src")/.." && pwd -P)"
AMI_STREAMS_CLI="$AMI_STREAMS_ROOT/bin/ami-streams"
export AMI_STREAMS_ROOT AMI_STREAMS_CLI
unset _ami_streams_src

ami-streams() { "$AMI_STREAMS_CLI" "$@"; }

# MCP server: ami-streams-mcp [--transport stdio|http] [--port N] [--token T]
ami-streams-mcp() { "$AMI_STREAMS_CLI" mcp "$@"; }
# Matrix homeserver lifecycle (the embedded homeserver under the ami-streams supervisor).
ami-matrix-start() { "$AMI_STREAMS_CLI" matrix start "$@"; }
ami-matrix-stop() { "$AMI_STREAMS_CLI" matrix stop "$@"; }
ami-matrix-status() { "$AMI_STREAMS_CLI" matrix status "$@"; }
# ami-matrix-config edit | validate [FILE]
ami-matrix-config() {
  if [ $# -eq 0 ]; then
    echo "usage: ami-matrix-config edit|validate [FILE]" >&2
    return 2
  fi
  "$AMI_STREAMS_CLI" matrix config "$@"
}
# Live monitor of every service: ami-streams-monitor [--once] [--json] [--interval MS]
ami-streams-monitor() { "$AMI_STREAMS_CLI" monitor "$@"; }
# Test suite: ami-streams-test [--unit|--e2e|--smoke] [FILTER...]
ami-streams-test() { "$AMI_STREAMS_CLI" test "$@"; }
# Not built yet: these reach real CLI commands that fail with AMI_NOT_BUILT (exit 4).
ami-cdn-deploy() { "$AMI_STREAMS_CLI" cdn deploy "$@"; }
ami-p2p-start() { "$AMI_STREAMS_CLI" p2p start "$@"; }
ami-stream-start() { "$AMI_STREAMS_CLI" stream start "$@"; }
ami-edge-deploy() { "$AMI_STREAMS_CLI" edge deploy "$@"; }

alias asm='ami-streams-monitor'
alias ast='ami-streams-test'
alias ams='ami-streams-mcp'
alias amatstart='ami-matrix-start'
alias amatstop='ami-matrix-stop'
alias amatst='ami-matrix-status'
alias amatc='ami-matrix-config'
alias acdnd='ami-cdn-deploy'
alias ap2p='ami-p2p-start'
alias astm='ami-stream-start'
