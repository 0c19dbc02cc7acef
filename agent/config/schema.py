"""The configuration schema: one pydantic model per section, each field documented (`config init` prints them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from branchwise.sandbox.settings import PolicySettings, SandboxSettings
from branchwise.tools.browser.settings import BrowserSettings
from branchwise.tools.mcp.settings import McpSettings


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)


class LLMSettings(_Section):
    """How the model is called (litellm)."""

    api_base: str | None = None
    """Base URL of the model server, e.g. http://127.0.0.1:11434 (Ollama) or http://127.0.0.1:8000/v1."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (default: the provider's usual one)."""
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    """Sampling temperature of the main loop."""
    max_output_tokens: int | None = Field(None, gt=0)
    """Cap on tokens generated per reply (default: the provider's)."""
    timeout_s: float = Field(120.0, gt=0)
    """Seconds to wait for one model reply before it counts as a timeout."""
    max_retries: int = Field(4, ge=0)
    """Retries on rate limits, 5xx and timeouts (never on authentication or context-length errors)."""
    retry_backoff_s: float = Field(2.0, ge=0)
    """First retry delay in seconds; it doubles on every retry (at most 60 s, or what Retry-After asks)."""
    tool_calling: Literal["auto", "native", "text"] = "auto"
    """native: the provider's tool calling; text: tool calls written in the reply text; auto: native unless the
    model is known not to support it."""
    extra: dict[str, Any] = {}
    """Extra keyword arguments for litellm.completion, e.g. {top_p = 0.9}."""


class LimitsSettings(_Section):
    """When a run stops on its own."""

    max_steps: int = Field(50, gt=0)
    """Tool steps (model replies that were executed; a search node is one) before the run stops with
    budget_exceeded, whatever the search strategy and with or without the planner."""
    max_cost_usd: float = Field(3.0, ge=0)
    """Dollars spent on the model before the run stops with budget_exceeded (0 = no limit)."""
    max_wall_s: float = Field(1800.0, gt=0)
    """Seconds of wall time before the run stops with budget_exceeded; it also cuts short a model call or a
    command that is still running."""
    max_tokens: int = Field(0, ge=0)
    """Prompt plus completion tokens of all model calls before the run stops with budget_exceeded (0 = no limit)."""
    max_format_errors: int = Field(3, gt=0)
    """Malformed replies in a row (no tool call, unknown tool, bad arguments) before the run fails."""
    max_finish_rejections: int = Field(3, ge=0)
    """Times a finish may be refused because the task's checks fail before the run fails."""


class ToolSettings(_Section):
    """How the agent's tools behave."""

    shell_timeout_s: float = Field(120.0, gt=0)
    """Default wall-clock limit of one shell command (the model may ask for up to 4x this)."""
    output_limit_bytes: int = Field(30_000, ge=1000)
    """Bytes of command output shown to the model; the head and the tail are kept."""
    check_timeout_s: float = Field(600.0, gt=0)
    """Wall-clock limit of one task check."""


class SearchSettings(_Section):
    """Tree search over actions: none (the plain loop), best-of-n, or mcts."""

    strategy: Literal["none", "best-of-n", "mcts"] = "none"
    """none: one trajectory; best-of-n: independent attempts picked by verification; mcts: a tree search."""
    attempts: int = Field(3, ge=1)
    """best-of-n: how many independent attempts."""
    branching: int = Field(2, ge=1)
    """Candidate replies proposed per expansion (one query with n, or distinct alternatives asked in turn); the
    candidates of one expansion are judged together in one call."""
    max_nodes: int = Field(40, ge=2)
    """Nodes (executed replies) the search may create in all."""
    max_model_calls: int = Field(80, ge=1)
    """Model calls in all: proposals (one per candidate), judge calls and the final chooser."""
    max_expansions: int = Field(3, ge=1)
    """mcts: children per node at most."""
    max_depth: int = Field(20, ge=1)
    """mcts: steps from the root at most."""
    exploration: float = Field(0.05, ge=0)
    """mcts: UCT exploration constant on [0, 1] rewards (small: near best-first)."""
    depth_penalty: float = Field(0.004, ge=0)
    """mcts: subtracted per sqrt(depth), so shallow alternatives stay in reach."""
    temperature: float = Field(0.7, ge=0, le=2)
    """Sampling temperature for candidate replies."""
    judge: Literal["auto", "model", "off"] = "auto"
    """LLM judge for nodes the executable signals do not decide: model, off, or auto (off for scripted models)."""
    min_verified: int = Field(1, ge=1)
    """Stop once this many distinct finished candidates pass the checks."""
    judge_agreement: bool = True
    """When all candidates of an expansion propose the same step, skip the judge: their agreement stands in for
    it (self-consistency) and the step keeps the value of the state it was taken from."""
    early_stop_judge: float = Field(0.8, ge=0, le=1)
    """A candidate that passes the checks stops the search early only if the judge rates it at least this (0..1);
    otherwise the search goes on and the final selection weighs it against the others."""
    check_after_edits: bool = True
    """Run the task's checks at the start and after every step that changes files, and value each step by them
    (costs the checks' run time per step; the strongest signal the search has)."""
    fit_budget: bool = True
    """Fit the strategy to the budget it is given: when the model calls left cannot pay for one judged mcts
    trajectory (trajectory_steps x (branching + 1)), run best-of-n with the attempts that fit (trajectory_steps
    calls each, at least two), else the plain loop; a warning says so. false: always run the configured one."""
    trajectory_steps: int = Field(8, ge=1)
    """Steps one attempt at a goal is expected to take: the unit the search sizes itself by (see fit_budget)."""


class PlannerSettings(_Section):
    """The planner-executor loop: a plan of checkable subgoals, a progress ledger, re-planning, working memory."""

    enabled: bool = True
    """Plan the task into subgoals first (a task file's `plan` is used as given). false: one loop, no plan."""
    max_replans: int = Field(2, ge=0)
    """Re-plans allowed in one run before it fails."""
    stall_steps: int = Field(4, ge=1)
    """Steps without progress (no file changed, nothing new learned) before re-planning."""
    max_failures: int = Field(3, ge=1)
    """Failed steps in a row before re-planning."""
    max_steps_per_subgoal: int = Field(15, ge=1)
    """Steps one subgoal may take before re-planning (searches: nodes per subgoal)."""
    check_each_step: bool = True
    """Run the current subgoal's done-check after every step, and move on as soon as it passes."""
    condense: bool = True
    """Replace finished subgoals by summaries and keep the prompt within the context budget."""
    context_tokens: int = Field(0, ge=0)
    """Prompt budget in tokens; 0 = 60% of the model's input window per litellm (32000 when unknown)."""


class WorkspaceSettings(_Section):
    """Which directory a run works in."""

    allow_non_git: bool = False
    """Work in a directory that is not inside a git repository (also --no-git); otherwise that is refused."""
    max_files: int = Field(100_000, ge=1)
    """A workspace with more files than this is refused before its first snapshot (pick a smaller one with -C)."""


class MemorySettings(_Section):
    """Long-term memory: tips and shortcuts learned from verified runs (see `branchwise memory`)."""

    enabled: bool = True
    """Retrieve tips and shortcuts into runs, and learn new ones from runs whose checks passed."""
    path: str | None = None
    """The database (default: $XDG_DATA_HOME/branchwise/memory.db, with ~/.local/share when it is unset)."""
    learn: bool = True
    """Write candidates after a verified run (false: only retrieve what is there)."""
    reflector: Literal["auto", "model", "trace"] = "auto"
    """Who proposes new items: model (one model call that returns edit operations), trace (rules over the run's
    own steps, no model call), auto (trace for scripted models, model otherwise)."""
    auto_promote: bool = True
    """Make candidates active once they pass validation (rules, a verified run, a replayed shortcut); false:
    every item waits for `branchwise memory promote`."""
    tip_tokens: int = Field(1500, ge=0)
    """Token budget of the notes block in a prompt (tips and shortcut signatures)."""
    max_tips: int = Field(8, ge=0)
    """Tips in one notes block at most."""
    max_shortcuts: int = Field(5, ge=0)
    """Shortcuts offered to one run at most."""
    shortcut_tools: bool = True
    """Offer active shortcuts to the model as tools that run their steps as one action."""
    allowed_hosts: list[str] = []
    """Hosts (globs) memory items may link to; an item with any other URL is quarantined."""
    embeddings: Literal["auto", "off"] = "auto"
    """auto: fuse BM25 with a local sentence-transformers model when one is installed and already on disk (it is
    never downloaded); off: BM25 only."""
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    """A local model directory, or a model already in the Hugging Face cache."""
    cap_tips: int = Field(200, ge=1)
    """Active tips per repository at most; the least useful are deprecated first."""
    cap_shortcuts: int = Field(50, ge=1)
    """Active shortcuts per repository at most."""
    retire_unused_days: float = Field(90.0, gt=0)
    """A tip that has not been used for this many days and never helped is deprecated."""


class MapSettings(_Section):
    """The repository map: ranked definitions in the system prompt, and the code-understanding tools."""

    enabled: bool = True
    """Put the map into the system prompt and offer repo_map, find_symbol, find_references and outline."""
    tokens: int = Field(1024, ge=0, le=32_000)
    """Token budget of the map in the system prompt (tiktoken cl100k_base tokens; never exceeded; 0 = no map in
    the prompt, the tools stay)."""
    tool_tokens: int = Field(2048, ge=128, le=32_000)
    """Default token budget of the map the repo_map tool returns."""
    max_file_bytes: int = Field(1_000_000, gt=0)
    """Source files larger than this are not parsed (counted as too-large)."""
    max_files: int = Field(50_000, gt=0)
    """Source files indexed at most (in path order); the rest are left out, with a count."""


class GitSettings(_Section):
    """What happens in git at the end of a run (branchwise never pushes and never rewrites commits)."""

    commit: bool = True
    """In a git repository, commit a verified result on a new branch made from the starting HEAD; the user's
    branch, index and uncommitted work are left as they are. false: leave the changes in the working tree."""
    branch_prefix: str = Field("branchwise/", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    """Prefix of the branch a result is committed on; a slug of the task follows it."""
    author: str = Field("branchwise <branchwise@localhost>", pattern=r"^[^<>\n]+ <[^<>\n]+>$")
    """Author and committer of the commit, as "Name <email>"."""

    @field_validator("branch_prefix")
    @classmethod
    def _valid_ref(cls, value: str) -> str:
        if ".." in value or "//" in value or "/." in value or value.endswith(".lock"):
            raise ValueError("not a valid start of a git branch name")
        return value


class Config(_Section):
    """Everything a run needs to know, merged from all layers."""

    model: str | None = None
    """Model name as litellm knows it (e.g. openai/gpt-4o-mini, anthropic/claude-sonnet-4-5, ollama/qwen2.5-coder),
    or scripted:PATH to replay a YAML reply file."""
    checks: list[str] = []
    """Shell commands run in the sandbox after the model finishes; the task succeeds only if all exit 0."""
    instructions: list[str] = ["AGENTS.md", "CLAUDE.md"]
    """Project instruction files; the first one found in the workspace goes into the system prompt."""
    llm: LLMSettings = LLMSettings()
    limits: LimitsSettings = LimitsSettings()
    tools: ToolSettings = ToolSettings()
    search: SearchSettings = SearchSettings()
    planner: PlannerSettings = PlannerSettings()
    workspace: WorkspaceSettings = WorkspaceSettings()
    memory: MemorySettings = MemorySettings()
    sandbox: SandboxSettings = SandboxSettings()
    policy: PolicySettings = PolicySettings()
    map: MapSettings = MapSettings()
    git: GitSettings = GitSettings()
    mcp: McpSettings = McpSettings()
    browser: BrowserSettings = BrowserSettings()
