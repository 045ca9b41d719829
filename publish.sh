#!/usr/bin/env bash
# publish.sh: verify (strict) -> build -> publish the site, with the paper, to a target.
#
#   ./publish.sh DIR                                  copy the site into DIR
#   ./publish.sh --branch gh-pages [--remote origin]  commit the site to a branch of a remote
#                                                     (gh-pages style) and push it
# Options:
#   --project DIR   the claims project to publish (default: the checkout this script is in)
#   --strict        also refuse results made from a work tree with uncommitted changes (their
#                   commit does not describe the code that made them)
#   -h, --help      this text
#
# Steps: `python -m claims verify --no-run` (nothing runs: every required claim must already be
# verified by its committed artifacts), then `build-paper --strict` (when content/paper/ exists)
# and `build-site --strict`. Any claim that does not stand, or any build warning, stops the
# publish before anything is copied or pushed, and the reason is printed.
#
# A directory target is replaced whole (built beside it, then swapped in); a non-empty directory
# that an earlier publish did not make (no .claims-published marker) is refused. A target that is a
# symbolic link is published into where it leads (the link is kept); a link that leads nowhere
# (dangling, or a loop) is refused before anything is built. A copy that fails (a full disk) stops
# with one line and leaves neither the temporary copy nor a half-replaced target. A branch target
# is committed through a temporary `git worktree` (your checkout and branches are left as they
# are) on top of the remote branch, or as its first commit, and pushed; publishing the same site
# twice makes no new commit. The branch checked out and the remote's default branch are refused
# (publishing there would replace the source tree with the site), and so is a name git would not
# take; both are checked before anything is built.
#
# Uncommitted edits (specs, prose, code: anything but build/) are refused under --strict; otherwise
# the publish says so, and its commit message, the .claims-published marker and the reflog of
# refs/claims/published record that it was made from HEAD plus uncommitted changes.
#
# Published files are world-readable (0644, folders 0755), whatever the umask of the build.
#
# After a publish, the project's HEAD is recorded as the git ref refs/claims/published (in a git
# checkout): `python -m claims diff` and the site's changes page compare with it.
#
# Environment: PYTHON (default: <this checkout>/.venv/bin/python).
# Exit codes: 0 published (or already up to date); 1 refused or failed; 2 usage error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$here"
target=""
branch=""
remote="origin"
strict=""

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "publish.sh: $*" >&2; exit 1; }
usage_error() { echo "publish.sh: $*" >&2; echo "usage: ./publish.sh DIR | ./publish.sh --branch NAME [--remote NAME]" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --branch) [ $# -ge 2 ] || usage_error "--branch needs a name"; branch="$2"; shift 2 ;;
    --remote) [ $# -ge 2 ] || usage_error "--remote needs a name"; remote="$2"; shift 2 ;;
    --project) [ $# -ge 2 ] || usage_error "--project needs a directory"
               [ -d "$2" ] || usage_error "--project $2: no such directory"
               project="$(cd "$2" && pwd)"; shift 2 ;;
    --strict) strict=1; shift ;;
    -*) usage_error "unknown option $1" ;;
    *) [ -z "$target" ] || usage_error "one target directory only"; target="$1"; shift ;;
  esac
done
if [ -n "$branch" ] && [ -n "$target" ]; then usage_error "give a directory or --branch, not both"; fi
if [ -z "$branch" ] && [ -z "$target" ]; then usage_error "give a target directory or --branch NAME"; fi

PYTHON="${PYTHON:-$here/.venv/bin/python}"
[ -x "$PYTHON" ] || command -v "$PYTHON" >/dev/null 2>&1 || die "no Python at $PYTHON (run 'make setup' first)"
claims() { "$PYTHON" -m claims --project "$project" "$@"; }
paths="$("$PYTHON" -c 'import sys; from claims.project import Project; from pathlib import Path; p = Project.at(Path(sys.argv[1])); print(p.build_dir); print(p.content_dir)' "$project")" \
  || usage_error "cannot read the project at $project"
build_dir="$(printf '%s\n' "$paths" | sed -n 1p)"
content_dir="$(printf '%s\n' "$paths" | sed -n 2p)"
site="$build_dir/site"

# ---- 0 check the target, the branch and the work tree before doing any work ----------------------
if [ -n "$target" ]; then
  if [ -L "$target" ]; then  # publish where the link leads, and keep the link
    resolved="$(readlink -e -- "$target" 2>/dev/null)" \
      || die "$target is a symbolic link that leads nowhere (dangling, or a loop): fix or remove it"
    target="$resolved"
  fi
  if [ -e "$target" ] && [ ! -d "$target" ]; then die "$target exists and is not a directory"; fi
  if [ -d "$target" ] && [ -n "$(ls -A "$target")" ] && [ ! -f "$target/.claims-published" ]; then
    die "refusing to publish into $target: it is not empty and no earlier publish made it (no .claims-published)"
  fi
fi
in_git=""
if git -C "$project" rev-parse --verify --quiet HEAD >/dev/null 2>&1; then in_git=1; fi
if [ -n "$branch" ]; then
  git check-ref-format --branch "$branch" >/dev/null 2>&1 || usage_error "--branch $branch: not a valid branch name"
  [ -n "$in_git" ] || die "$project is not a git checkout with a commit: cannot publish to a branch"
  git -C "$project" remote get-url "$remote" >/dev/null 2>&1 || die "no git remote named '$remote' in $project"
  current="$(git -C "$project" symbolic-ref --quiet --short HEAD 2>/dev/null || true)"
  [ "$branch" != "$current" ] || die "refusing to publish to '$branch': it is the branch checked out here, and the site would replace its source tree"
  default="$(git -C "$project" ls-remote --symref "$remote" HEAD 2>/dev/null | sed -n 's|^ref: refs/heads/\(.*\)[[:space:]]HEAD$|\1|p')"
  [ "$branch" != "$default" ] || die "refusing to publish to '$branch': it is the default branch of '$remote', and the site would replace its source tree"
fi
uncommitted=""
if [ -n "$in_git" ]; then
  build_rel="$(cd "$project" && "$PYTHON" -c 'import os, sys; print(os.path.relpath(sys.argv[1]))' "$build_dir")"
  uncommitted="$(git -C "$project" status --porcelain --untracked-files=normal -- . ":(exclude)$build_rel" 2>/dev/null | head -n 5)"
fi

# ---- 1 verify: nothing is published unless every required claim stands ----------------------
echo "publish.sh: verifying every claim against its committed artifacts (nothing runs) ..."
report="$build_dir/publish-verify.json"
rc=0
verify_out="$(claims verify --no-run --json "$report" 2>&1)" || rc=$?
if [ "$rc" -eq 2 ]; then
  printf '%s\n' "$verify_out" >&2
  echo "publish.sh: bad input (above)" >&2
  exit 2
elif [ "$rc" -ne 0 ]; then
  printf '%s\n' "$verify_out" >&2
  die "refusing to publish: not every required claim is verified (above: which, and why). Run 'python -m claims verify' to rerun what is stale, or fix what failed."
fi
printf '%s\n' "$verify_out" | tail -n 1
if [ -n "$strict" ]; then
  dirty="$("$PYTHON" -c 'import json, sys; print(" ".join(c["id"] for c in json.load(open(sys.argv[1]))["claims"] if c.get("dirty")))' "$report")"
  [ -z "$dirty" ] || die "refusing to publish (--strict): results made from a work tree with uncommitted changes: $dirty. Commit the code, rerun verify, commit the artifacts."
  [ -z "$uncommitted" ] || die "refusing to publish (--strict): the work tree has uncommitted changes ($(printf '%s' "$uncommitted" | sed 's/^...//' | paste -sd, - | sed 's/,/, /g')); commit them first, so that the published commit describes the site"
fi
made_from="$(git -C "$project" rev-parse --short HEAD 2>/dev/null || true)"
if [ -n "$uncommitted" ]; then
  made_from="$made_from + uncommitted changes"
  echo "publish.sh: the work tree has uncommitted changes: the publish is recorded as made from $made_from"
fi

# ---- 2 build (strict: any warning stops here) ---------------------------------------------
if [ -d "$content_dir/paper" ]; then
  claims build-paper --strict || die "refusing to publish: build-paper --strict failed (above)"
fi
claims build-site --strict || die "refusing to publish: build-site --strict failed (above)"
[ -f "$site/index.html" ] || die "the site build left no $site/index.html"

copy_site() {  # copy the built site into $1 (without the build manifest), with a marker; one line on failure
  local err
  if ! err="$(cp -R "$site/." "$1/" 2>&1)"; then
    die "cannot copy the site into $1: $(printf '%s\n' "$err" | head -n 1 | sed 's/^cp: //')"
  fi
  rm -f "$1/.manifest.json"
  { echo "published by publish.sh; every required claim verified"
    [ -z "$made_from" ] || echo "made from $made_from"; } > "$1/.claims-published" \
    || die "cannot write $1/.claims-published"
  chmod -R u=rwX,go=rX "$1"
}

# ---- 3a publish to a directory ----------------------------------------------------------------
publish_dir() {
  local dest="$1" parent old
  parent="$(dirname "$dest")"
  mkdir -p "$parent" 2>/dev/null || die "cannot create $parent"
  tmp="$(mktemp -d "$parent/.publish.XXXXXX" 2>/dev/null)" || die "cannot create a temporary folder in $parent"
  trap 'rm -rf "$tmp"' EXIT  # global tmp: a failed copy leaves nothing behind
  copy_site "$tmp"
  chmod 755 "$tmp"
  if [ -d "$dest" ]; then
    old="$(mktemp -d "$parent/.unpublish.XXXXXX")" || die "cannot create a temporary folder in $parent"
    mv "$dest" "$old/site"
    if ! mv "$tmp" "$dest"; then mv "$old/site" "$dest"; rm -rf "$old"; die "cannot move the new site into $dest"; fi
    rm -rf "$old"
  else
    mv "$tmp" "$dest" || die "cannot move the new site into $dest"
  fi
  trap - EXIT
  echo "publish.sh: published $(find "$dest" -type f | wc -l | tr -d ' ') files to $dest"
}

# ---- 3b publish to a branch of a remote, through a temporary worktree ------------------------
publish_branch() {
  local parent_args=() tree_id commit
  work="$(mktemp -d)"  # global: the EXIT trap removes the worktree after this function returns
  tree="$work/tree"
  trap 'git -C "$project" worktree remove --force "$tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  if git -C "$project" ls-remote --exit-code --heads "$remote" "$branch" >/dev/null 2>&1; then
    git -C "$project" fetch --quiet "$remote" "+refs/heads/$branch:refs/remotes/$remote/$branch"
    git -C "$project" worktree add --quiet --detach "$tree" "refs/remotes/$remote/$branch"
    parent_args=(-p HEAD)
  else
    echo "publish.sh: branch '$branch' does not exist on '$remote': making its first commit"
    git -C "$project" worktree add --quiet --detach "$tree" HEAD
  fi
  find "$tree" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
  copy_site "$tree"
  touch "$tree/.nojekyll"
  git -C "$tree" add -A
  if [ ${#parent_args[@]} -gt 0 ] && git -C "$tree" diff --cached --quiet HEAD; then
    echo "publish.sh: '$branch' on '$remote' already has this site: nothing to publish"
    return 0
  fi
  if ! git -C "$project" config user.name >/dev/null; then
    export GIT_AUTHOR_NAME="publish.sh" GIT_COMMITTER_NAME="publish.sh"
  fi
  if ! git -C "$project" config user.email >/dev/null; then
    export GIT_AUTHOR_EMAIL="publish@localhost" GIT_COMMITTER_EMAIL="publish@localhost"
  fi
  tree_id="$(git -C "$tree" write-tree)"
  commit="$(git -C "$tree" commit-tree "$tree_id" "${parent_args[@]}" -m "Publish site from $made_from (every required claim verified)")"
  git -C "$tree" push --quiet "$remote" "$commit:refs/heads/$branch"
  echo "publish.sh: pushed $(git -C "$tree" rev-parse --short "$commit") to '$branch' on '$remote'"
}

if [ -n "$branch" ]; then
  publish_branch
else
  publish_dir "$target"
fi

# ---- 4 remember what was published, for `claims diff` and the changes page -------------------
if [ -n "$in_git" ]; then
  git -C "$project" update-ref -m "publish.sh: made from $made_from" --create-reflog refs/claims/published HEAD
  echo "publish.sh: recorded $made_from as refs/claims/published"
fi
