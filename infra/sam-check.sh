#!/usr/bin/env bash
# The SAM checks CI runs on template.yaml: cfn-lint, `sam validate --lint`,
# and `sam build`, which builds every function for arm64 with cargo-lambda
# (release, cross-compiled through zig: no Docker, no AWS credentials).
#
#   infra/sam-check.sh              all three
#   infra/sam-check.sh --lint-only  the two linters, no build
#
# The release arm64 build has a target directory of its own
# (LECTERN_SAM_TARGET_DIR, default ~/.cache/lectern/sam-target), so it never
# waits on, nor invalidates, the debug build's. The artefacts land in
# .aws-sam/ (gitignored), ready for `sam deploy`.
set -euo pipefail
cd "$(dirname "$0")/.."

lint_only=false
case "${1:-}" in
  "") ;;
  --lint-only) lint_only=true ;;
  *) echo "usage: $0 [--lint-only]" >&2; exit 2 ;;
esac

step() { printf '\n== sam-check: %s\n' "$*"; }
elapsed() { printf '   (%ss)\n' $(( $(date +%s) - $1 )); }

# sam validate reads a region, though it calls no AWS API; no credentials.
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export SAM_CLI_TELEMETRY=0
export CARGO_TERM_COLOR=never
export PATH="$(python3 -m site --user-base)/bin:$PATH"

step "tools"
missing=()
command -v cfn-lint >/dev/null || missing+=(cfn-lint)
command -v sam >/dev/null || missing+=(aws-sam-cli)
# cargo-lambda from PyPI brings zig (the ziglang package) for cross-linking.
$lint_only || command -v cargo-lambda >/dev/null || missing+=(cargo-lambda)
if ((${#missing[@]})); then
  echo "installing from PyPI: ${missing[*]}"
  # A Python that refuses to be changed (PEP 668) takes them per user.
  python3 -m pip install --quiet "${missing[@]}" ||
    python3 -m pip install --quiet --user --break-system-packages "${missing[@]}"
  # pyenv's shims learn of new console scripts only on a rehash.
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi
echo "cfn-lint $(cfn-lint --version | awk '{print $2}'), $(sam --version)"

step "cfn-lint template.yaml"
t=$(date +%s)
cfn-lint template.yaml
echo "   no errors, no warnings"
elapsed "$t"

step "sam validate --lint"
t=$(date +%s)
sam validate --lint --template-file template.yaml
elapsed "$t"

if $lint_only; then
  step "done (lint only)"
  exit 0
fi

step "rust target aarch64-unknown-linux-gnu"
if rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "   installed"
else
  rustup target add aarch64-unknown-linux-gnu
fi
echo "cargo-lambda $(cargo lambda --version | awk '{print $2}')"

export CARGO_TARGET_DIR=${LECTERN_SAM_TARGET_DIR:-$HOME/.cache/lectern/sam-target}
mkdir -p "$CARGO_TARGET_DIR"
# aws-lambda-builders looks for target/lambda/<bin>/bootstrap where `cargo
# metadata` puts the target directory (which honours CARGO_TARGET_DIR) since
# it learnt to share one target directory across a workspace's functions;
# older versions look in ./target/lambda only. For those, point that at ours
# (unless it is a real directory of someone's).
if ! python3 -c 'import sys
from aws_lambda_builders.workflows.rust_cargo.cargo_lambda import SubprocessCargoLambda as S
sys.exit(0 if hasattr(S, "resolve_workspace_layout") else 1)' 2>/dev/null; then
  if [ -e target/lambda ] && [ ! -L target/lambda ]; then
    echo "aws-lambda-builders ignores CARGO_TARGET_DIR and target/lambda is a real directory: remove it, or upgrade aws-sam-cli" >&2
    exit 1
  fi
  mkdir -p target "$CARGO_TARGET_DIR/lambda"
  ln -sfn "$CARGO_TARGET_DIR/lambda" target/lambda
  echo "older aws-lambda-builders: target/lambda -> $CARGO_TARGET_DIR/lambda"
fi

step "sam build --beta-features (release, arm64; target dir $CARGO_TARGET_DIR)"
t=$(date +%s)
sam build --beta-features --template-file template.yaml
elapsed "$t"

# Every function of the template must have an arm64 ELF bootstrap (e_machine
# 0xb7 at offset 18).
expected=$(grep -c 'Type: AWS::Serverless::Function' template.yaml)
built=0
for bootstrap in .aws-sam/build/*/bootstrap; do
  if [ "$(od -An -tx1 -j18 -N2 "$bootstrap" | tr -d ' ')" != b700 ]; then
    echo "not an arm64 executable: $bootstrap" >&2
    exit 1
  fi
  built=$((built + 1))
done
if [ "$built" -ne "$expected" ]; then
  echo "expected $expected built functions, found $built" >&2
  exit 1
fi
echo "   $built arm64 bootstraps in .aws-sam/build"

step "done"
