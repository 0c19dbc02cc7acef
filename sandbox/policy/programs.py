"""What known programs do, as data for `effects.py`: wrappers that run another command, commands that
publish, push, deploy or write to other machines, and read-only commands with the options that would
make them execute or write.

The tables name classes of behaviour, not single examples: every registry upload, release host and
remote-write tool we know of, each wrapper's options that take a value (so the wrapped program is
found), and for the read-only commands exactly which options are safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Wrapper:
    """A program that runs the command given in its arguments (`env`, `sudo`, `timeout 5`, `npx`)."""

    values: frozenset[str] = frozenset()
    """Options that take the next word as their value (`-u USER`)."""
    positional: int = 0
    """Arguments before the wrapped command that are not options (`timeout DURATION cmd`)."""
    scripts: frozenset[str] = frozenset()
    """Options whose value is a shell command line (`su -c STRING`, `env -S STRING`)."""
    rest_is_script: bool = False
    """The remaining words, joined, are a shell command line (`watch CMD`, `ssh host CMD`)."""


def _w(values: str = "", positional: int = 0, scripts: str = "", rest_is_script: bool = False) -> Wrapper:
    return Wrapper(frozenset(values.split()), positional, frozenset(scripts.split()), rest_is_script)


WRAPPERS: dict[str, Wrapper] = {
    "env": _w("-u --unset -C --chdir -a --argv0", scripts="-S --split-string"),
    "sudo": _w("-u --user -g --group -h --host -p --prompt -C --close-from -D --chdir -r --role -t --type "
               "-U --other-user -T --command-timeout"),
    "doas": _w("-u -C"),
    "nohup": _w(), "builtin": _w(), "command": _w(), "exec": _w("-a"), "unbuffer": _w(), "eatmydata": _w(),
    "fakeroot": _w("-l --lib --faked -s -i"), "catchsegv": _w(), "setsid": _w(), "dbus-run-session": _w(),
    "time": _w("-f --format -o --output"),
    "nice": _w("-n --adjustment"),
    "ionice": _w("-c --class -n --classdata -p --pid -P --pgid -u --uid"),
    "timeout": _w("-s --signal -k --kill-after", positional=1),
    "stdbuf": _w("-i --input -o --output -e --error"),
    "chrt": _w(positional=1),
    "taskset": _w("-c --cpu-list", positional=1),
    "chroot": _w("--userspec --groups", positional=1),
    "flock": _w("-w --timeout -E --conflict-exit-code", positional=1, scripts="-c --command"),
    "xargs": _w("-I -i -n -L -l -P -d -E -e -s -a --arg-file --delimiter --max-args --max-lines --max-procs "
                "--replace --eof --max-chars --process-slot-var"),
    "strace": _w("-o -e -p -s -u -a -b -E -I -O -P -S -X"),
    "ltrace": _w("-o -e -p -s -u -a -n -l -x -L -A -D -F"),
    "su": _w("-s --shell -g --group -G --supp-group -w --whitelist-environment", scripts="-c --command"),
    "runuser": _w("-u --user -g --group -G --supp-group -s --shell -w", scripts="-c --command"),
    "script": _w("-E --echo -I --log-in -O --log-out -B --log-io -T --log-timing -m --logging-format",
                 scripts="-c --command"),
    "watch": _w("-n --interval -d --differences -q --equexit", rest_is_script=True),
    "systemd-run": _w("-u --unit -p --property -d -M --machine -E --setenv --description --slice"),
    "firejail": _w(),
    "npx": _w("-p --package", scripts="-c --call"), "pnpx": _w(), "bunx": _w(), "uvx": _w(
        "--from --with --with-requirements --python -p --index --default-index"),
    "nix-shell": _w("-p --packages -I --arg --argstr", scripts="--run --command"),
    "direnv": _w(),  # only `direnv exec DIR cmd` wraps; see SUBCOMMAND_WRAPPERS
}  # fmt: skip

# `program subcommand ...` that runs a command: (program, subcommand) -> how the rest is read.
SUBCOMMAND_WRAPPERS: dict[tuple[str, str], Wrapper] = {
    ("npm", "exec"): _w("-p --package -w --workspace", scripts="-c --call"),
    ("pnpm", "exec"): _w(), ("pnpm", "dlx"): _w(), ("yarn", "exec"): _w(), ("yarn", "dlx"): _w("-p --package"),
    ("bun", "x"): _w(), ("bun", "run"): _w(),
    ("uv", "run"): _w("--with --with-requirements --python -p --directory --project --package --group "
                      "--extra --index --env-file --from"),
    ("uv", "tool"): _w("--from --with --python -p", positional=1),  # `uv tool run X`
    ("pipx", "run"): _w("--spec --python"), ("poetry", "run"): _w(), ("pdm", "run"): _w(),
    ("hatch", "run"): _w(), ("pipenv", "run"): _w(), ("rye", "run"): _w(), ("devbox", "run"): _w(),
    ("conda", "run"): _w("-n --name -p --prefix --cwd"), ("mamba", "run"): _w("-n --name -p --prefix"),
    ("micromamba", "run"): _w("-n --name -p --prefix"), ("bundle", "exec"): _w(),
    ("mise", "exec"): _w(), ("mise", "x"): _w(), ("asdf", "exec"): _w(), ("direnv", "exec"): _w(positional=1),
    ("nix", "develop"): _w(scripts="-c --command"), ("dotnet", "tool"): _w(positional=1),
}  # fmt: skip

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "ash", "busybox", "rbash", "yash"})
# Interpreters and the options that give them code inline; that code may start any program.
INLINE_CODE = {
    "python": ("-c",), "perl": ("-e", "-E"), "ruby": ("-e",), "node": ("-e", "--eval", "-p", "--print"),
    "nodejs": ("-e", "--eval", "-p", "--print"), "php": ("-r",),
    "lua": ("-e",), "Rscript": ("-e",), "tclsh": (), "osascript": ("-e",), "pwsh": ("-c", "-Command"),
}  # fmt: skip
AWKS = frozenset({"awk", "gawk", "mawk", "nawk", "busybox-awk"})
# Words in inline code that start other programs.
SPAWNERS = ("subprocess", "os.system", "os.exec", "os.spawn", "os.popen", "popen", "pty.spawn", "system(",
            "exec(", "execv", "spawn(", "child_process", "Deno.Command", "Bun.spawn", "shell_exec", "passthru",
            "proc_open", "io.popen", "`", "qx", "%x", "IO.popen", "Open3", "Process.", "Runtime.getRuntime",
            "getline", "|&", "commands.", "sh.", "plumbum", "fabric", "paramiko", "pexpect")  # fmt: skip

# Version-suffixed names that are the same program (`python3.11`, `pip3`).
FAMILIES = ("python", "pip", "node", "ruby", "perl", "php", "lua", "gem", "bundle", "cargo", "npm")


@dataclass(frozen=True)
class Action:
    """One class of consequential command."""

    category: str
    """Names the policy's default rule (`default:<category>`)."""
    reason: str


PUSH = Action("git-push", "publishes code off the machine")
PUBLISH = Action("publish", "uploads to a package registry or a release host")
DEPLOY = Action("deploy", "changes remote systems or infrastructure")
REMOTE = Action("remote", "sends data to another machine")
STATEFUL = Action("stateful", "changes state outside the workspace (services, databases, global installs)")

ANY = "*"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _table(action: Action, text: str) -> dict[str, dict[str, Action]]:
    """`program: path, path` lines -> {program: {path: action}}; a path is the first words of the command's
    non-option arguments (`release create`), `*` any invocation."""
    table: dict[str, dict[str, Action]] = {}
    for line in text.strip().splitlines():
        program, _, paths = line.partition(":")
        table[program.strip()] = {p.strip(): action for p in paths.split(",")}
    return table


def _merge(*tables: dict[str, dict[str, Action]]) -> dict[str, dict[str, Action]]:
    merged: dict[str, dict[str, Action]] = {}
    for table in tables:
        for program, paths in table.items():
            merged.setdefault(program, {}).update(paths)
    return merged


ACTIONS = _merge(
    _table(
        PUBLISH,
        """
        npm: publish, unpublish, deprecate, dist-tag, owner, access, token, adduser, login, team, org, hook, trust
        pnpm: publish, unpublish, deprecate, dist-tag
        yarn: publish, npm, tag add, owner, login
        bun: publish
        lerna: publish, version
        changeset: publish
        changesets: publish
        semantic-release: *
        release-it: *
        np: *
        vsce: publish, unpublish
        ovsx: publish
        jsr: publish
        deno: publish
        twine: upload, register
        flit: publish, upload
        poetry: publish
        hatch: publish
        uv: publish
        pdm: publish
        maturin: publish, upload
        rye: publish
        anaconda: upload
        conda: upload
        devpi: upload, push
        cargo: publish, yank, owner
        gem: push, yank, owner
        rake: release
        mix: hex.publish, hex.retire
        cabal: upload
        stack: upload
        dart: pub publish
        flutter: pub publish
        pod: trunk push, repo push
        cpan-upload: *
        nuget: push, delete
        dotnet: nuget push, nuget delete
        goreleaser: *
        ghr: *
        ko: publish, build, resolve
        docker: push, image push, manifest push, login, buildx imagetools, trust
        podman: push, image push, manifest push, login
        buildah: push, login
        skopeo: copy, sync, delete, login
        crane: push, copy, cp, delete, mutate, tag, append, rebase, auth
        oras: push, attach, copy, cp, tag, login
        helm: push, registry login
        glab: *
        gh: *
        hub: release, pull-request, fork, create, issue
    """,
    ),
    _table(
        PUSH,
        """
        hub: push
        hg: push, email, phabsend
        svn: commit, ci, import, mkdir, delete, rm, copy, cp, move, mv, lock, propset
        bzr: push, send, commit
        fossil: push, sync
        darcs: push, send
        jj: git push
        sl: push, pr
    """,
    ),
    _table(
        DEPLOY,
        """
        ko: apply
        helm: install, upgrade, uninstall, delete, rollback
        kubectl: apply, create, delete, replace, patch, edit, scale, rollout, set, label, annotate, expose, run, cp
        terraform: apply, destroy, import, state, taint
        tofu: apply, destroy, import, state
        pulumi: up, update, destroy, import, refresh
        cdk: deploy, destroy, bootstrap
        serverless: deploy, remove
        sls: deploy, remove
        vercel: *
        netlify: deploy, sites:create, env:set
        firebase: deploy, hosting:channel:deploy
        wrangler: deploy, publish
        fly: deploy, launch, secrets
        flyctl: deploy, launch, secrets
        heroku: *
        railway: up, deploy
        surge: *
        eb: deploy, create, terminate
        aws: *
        gcloud: *
        gsutil: *
        az: *
        doctl: *
        oci: *
        linode-cli: *
        s3cmd: *
        ansible: *
        ansible-playbook: *
    """,
    ),
    _table(
        DEPLOY,
        """
        kubectl: exec, drain, cordon, uncordon, taint, autoscale, attach, debug
    """,
    ),
    _table(
        REMOTE,
        """
        ssh: *
        scp: *
        sftp: *
        mosh: *
        ftp: *
        lftp: *
        tftp: *
        smbclient: *
        mail: *
        mailx: *
        sendmail: *
        mutt: *
        swaks: *
        msmtp: *
        telnet: *
        rclone: *
    """,
    ),
    _table(
        STATEFUL,
        """
        docker: context, run, start, create, compose, volume, network, build, pull
        podman: run, start, create, build
        docker-compose: *
        systemctl: *
        service: *
        psql: *
        mysql: *
        redis-cli: *
        mongo: *
        mongosh: *
        createdb: *
        dropdb: *
        apt: install, remove
        apt-get: install, remove
        dnf: install, remove
        yum: install, remove
        apk: add, del
        brew: install, uninstall
        alembic: upgrade, downgrade
    """,
    ),
)
# gh and glab: subcommands that only read (everything else may write to the forge).
FORGE_READ = _words(
    "view list ls status diff checks browse search version --version help --help completion checkout clone "
    "download watch"
)
# Git subcommands and what they do; a subcommand not listed is unknown (an alias, a git-foo on PATH).
GIT_PUSHES = frozenset(
    _words("push send-pack http-push send-email imap-send cvsexportcommit p4 svn subtree lfs")
)  # p4, svn, subtree and lfs push only with some arguments
GIT_KNOWN = _words(
    """
    add am annotate apply archive bisect blame branch bundle cat-file check-attr check-ignore check-mailmap
    check-ref-format checkout checkout-index cherry cherry-pick citool clean clone column commit commit-graph
    commit-tree config count-objects credential describe diff diff-files diff-index diff-tree difftool fast-export
    fast-import fetch fetch-pack filter-branch for-each-ref for-each-repo format-patch fsck gc get-tar-commit-id
    grep hash-object help index-pack init init-db interpret-trailers log ls-files ls-remote ls-tree mailinfo
    mailsplit maintenance merge merge-base merge-file merge-index merge-tree mergetool mktag mktree mv name-rev
    notes pack-objects pack-refs patch-id prune prune-packed pull range-diff read-tree rebase reflog remote repack
    replace request-pull rerere reset restore rev-list rev-parse revert rm shortlog show show-branch show-index
    show-ref sparse-checkout stage stash status stripspace submodule switch symbolic-ref tag unpack-file
    unpack-objects update-index update-ref update-server-info var verify-commit verify-pack verify-tag version
    whatchanged worktree write-tree upload-pack receive-pack upload-archive
    """
)
GIT_GLOBAL_VALUES = frozenset(
    {
        "-C",
        "-c",
        "--git-dir",
        "--work-tree",
        "--namespace",
        "--config-env",
        "--super-prefix",
        "--attr-source",
        "--list-cmds",
    }
)
GIT_GLOBAL_FLAGS = frozenset(
    {
        "-P",
        "--no-pager",
        "--bare",
        "--no-replace-objects",
        "--no-lazy-fetch",
        "--literal-pathspecs",
        "--glob-pathspecs",
        "--noglob-pathspecs",
        "--icase-pathspecs",
        "--no-optional-locks",
        "--no-advice",
        "--version",
        "--help",
        "-h",
        "--html-path",
        "--man-path",
        "--info-path",
    }
)
# `git -c KEY=VALUE`: keys that cannot make git run another program or send data elsewhere.
GIT_HARMLESS_CONFIG = (
    "user.",
    "color.",
    "advice.",
    "init.defaultbranch",
    "commit.gpgsign",
    "tag.gpgsign",
    "core.autocrlf",
    "core.quotepath",
    "core.filemode",
    "core.safecrlf",
    "safe.directory",
    "log.",
    "format.pretty",
    "pull.rebase",
    "merge.conflictstyle",
    "diff.noprefix",
    "diff.renames",
    "status.",
    "i18n.",
    "gc.auto",
    "maintenance.auto",
    "protocol.version",
)
# Options that hand git a command to run: their value is judged as a command line.
GIT_COMMAND_OPTIONS = {"rebase": ("-x", "--exec"), "difftool": ("-x", "--extcmd"),
                       "filter-branch": ("--env-filter", "--tree-filter", "--index-filter", "--parent-filter",
                                         "--msg-filter", "--commit-filter", "--tag-name-filter")}  # fmt: skip
# Environment variables that change which git config, helpers or programs git uses.
GIT_ENVIRONMENT = (
    "GIT_CONFIG",
    "GIT_EXEC_PATH",
    "GIT_SSH",
    "GIT_PROXY",
    "GIT_ASKPASS",
    "GIT_EDITOR",
    "GIT_SEQUENCE_EDITOR",
    "GIT_EXTERNAL_DIFF",
    "GIT_PAGER",
    "GIT_TEMPLATE_DIR",
    "GIT_DIR",
)


@dataclass(frozen=True)
class ReadOnly:
    """A command that only reads, and which of its options would make it execute or write."""

    any_option: bool = False
    """Every option only changes what is read or shown."""
    short_values: str = ""
    """Short options that take a value (so `-ez` is -e with the value z, not -z)."""
    denied: frozenset[str] = frozenset()
    """Options that execute or write (short letters as `-x`, long names as `--name`, prefixes too)."""
    allowed_long: frozenset[str] | None = None
    """When set, the only long options allowed (for programs whose options are mostly unsafe to guess)."""
    subcommands: dict[str, ReadOnly] = field(default_factory=dict)
    """For git: read-only subcommands and their options."""


def _ro(
    short_values: str = "", denied: str = "", *, any_option: bool = False, allowed_long: str | None = None
) -> ReadOnly:
    allowed = None if allowed_long is None else _words(allowed_long)
    return ReadOnly(any_option, short_values, _words(denied), allowed)


_GIT_SHOW_DENIED = "--output --ext-diff --textconv --exec -p --paginate"
READ_ONLY: dict[str, ReadOnly] = {
    **{name: _ro(any_option=True) for name in ("ls", "cat", "head", "tail", "wc", "pwd", "echo", "stat")},
    "grep": _ro(any_option=True),
    "rg": _ro(short_values="ABCEMTdefgjmrt", denied="-z --search-zip --pre --pre-glob --hostname-bin"),
    "tree": _ro(short_values="LPIo", denied="-o -R", allowed_long="--noreport --dirsfirst --charset --gitignore "
                                                                 "--prune --du --si --sort --filelimit"),
    "git": ReadOnly(
        short_values="C",
        subcommands={
            "status": _ro(any_option=True),
            "diff": _ro(denied=_GIT_SHOW_DENIED), "log": _ro(denied=_GIT_SHOW_DENIED),
            "show": _ro(denied=_GIT_SHOW_DENIED), "rev-parse": _ro(any_option=True),
            "branch": _ro(allowed_long="--list --all --remotes --show-current --verbose --contains --no-contains "
                                       "--merged --no-merged --sort --format --points-at --column --no-column "
                                       "--color --no-color --ignore-case --abbrev",
                          denied="-d -D -m -M -c -C -f -u -t --track --edit-description"),
        },
    ),
}  # fmt: skip
