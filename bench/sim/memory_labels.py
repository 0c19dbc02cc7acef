"""A labelled retrieval set for the memory benchmark: tips and shortcuts of a web-shop repository grouped by
topic, the same topics in another repository (which scope must filter out), untrusted and candidate items that
match well (which trust and status must filter out), and 36 task-like queries, each labelled with its topic.

The queries are written as a user would write a task, not copied from the tips: precision measures how well
BM25 with scope, status and trust filters finds the lessons that apply.
"""

from __future__ import annotations

TOPICS: dict[str, list[str]] = {
    "tests": [
        "Run the suite with `uv run pytest -q`; plain `pytest` picks up the system interpreter.",
        "Run one module's tests with `uv run pytest -q tests/<module>` to keep feedback fast.",
        "Tests that touch the database need the `db` fixture from tests/conftest.py.",
        "Add `-x` to stop at the first failing test when a whole test file breaks.",
        "Slow tests are marked `@pytest.mark.slow`; `-m 'not slow'` skips them while iterating.",
    ],
    "migrations": [
        "Create a schema migration with `uv run alembic revision --autogenerate -m <message>`.",
        "Apply migrations to the local database with `uv run alembic upgrade head`.",
        "Autogenerate misses renamed columns: edit the migration to use alter_column instead of drop and add.",
        "Every migration needs a downgrade; the CI job runs upgrade, downgrade and upgrade again.",
        "Models live in shop/models/; import new ones in shop/models/__init__.py or alembic will not see them.",
    ],
    "lint": [
        "Format and lint with `uv run ruff format . && uv run ruff check --fix .` before committing.",
        "The pre-commit hooks run ruff and mypy; install them once with `uv run pre-commit install`.",
        "Line length is 100 in this project (pyproject [tool.ruff]); long strings must be split.",
        "Import order is checked by ruff's isort rules: first-party package name is shop.",
        "Unused imports fail CI: ruff F401 is an error here, not a warning.",
    ],
    "config": [
        "Settings are read from environment variables through shop/settings.py (pydantic BaseSettings).",
        "Copy `.env.example` to `.env` for local runs; the app refuses to start without DATABASE_URL.",
        "New settings need a default in shop/settings.py and a line in .env.example.",
        "Feature flags are settings named FEATURE_<NAME>; read them through settings, never os.environ.",
        "Tests override settings with the `settings_override` fixture rather than monkeypatching the env.",
    ],
    "endpoints": [
        "HTTP routes are FastAPI routers in shop/api/<resource>.py, included in shop/api/__init__.py.",
        "A new endpoint needs a request and a response schema in shop/schemas/ and a test in tests/api/.",
        "List endpoints take `limit` and `offset` query parameters and return a Page model.",
        "Route handlers stay thin: business logic goes into shop/services/<resource>.py.",
        "Use the `client` fixture (httpx AsyncClient) to call endpoints in tests.",
    ],
    "fixtures": [
        "Factories for test data are in tests/factories.py (factory_boy); prefer them to hand-built models.",
        "The `db` fixture wraps each test in a transaction that is rolled back at the end.",
        "Shared fixtures go into tests/conftest.py; fixtures used by one module stay in that module.",
        "Time-dependent tests use the `frozen_time` fixture instead of sleeping.",
        "The `user` fixture gives a logged-in customer; `admin` gives a staff account.",
    ],
    "typing": [
        "mypy runs in strict mode on shop/; new modules need full annotations.",
        "Third-party stubs are listed in the dev dependency group (types-requests, types-redis).",
        "Use `from __future__ import annotations` at the top of every module, as the rest of the code does.",
        "Pydantic models are checked with the pydantic mypy plugin; do not silence them with type: ignore.",
        "Run the type check alone with `uv run mypy shop`.",
    ],
    "logging": [
        "Logging goes through structlog: get a logger with `structlog.get_logger(__name__)`.",
        "Log events are snake_case names with key-value context, not formatted sentences.",
        "Never log request bodies: they can carry card numbers; log the order id instead.",
        "Log levels come from LOG_LEVEL in settings; tests run with WARNING.",
        "The JSON log renderer is only on in production; local runs print coloured console logs.",
    ],
    "dependencies": [
        "Add a dependency with `uv add <package>`; it updates pyproject.toml and uv.lock together.",
        "Dev-only tools go into the dev group: `uv add --group dev <package>`.",
        "Never edit uv.lock by hand; regenerate it with `uv lock` after resolving conflicts.",
        "Pin upper bounds only for packages that broke us before (see the comments in pyproject).",
        "After pulling, `uv sync` installs exactly what the lock file says.",
    ],
    "services": [
        "Start postgres and redis for local work with `docker compose up -d db cache`.",
        "The compose file maps postgres to port 5433 to avoid clashing with a system postgres.",
        "Reset the local database with `docker compose down -v` (it deletes the volume).",
        "Integration tests expect the compose services; unit tests must not need them.",
        "Redis is only a cache here: code must keep working when it is unreachable.",
    ],
    "frontend": [
        "The web front end lives in web/; build it with `npm run build` inside that folder.",
        "Run `npm ci` in web/ after pulling; package-lock.json is committed.",
        "Static files are served from web/dist, which the backend mounts at /static.",
        "Front-end unit tests run with `npm test` (vitest) inside web/.",
        "Styles are Tailwind classes; do not add new CSS files.",
    ],
    "release": [
        "Bump the version in pyproject.toml and add a section to CHANGELOG.md for every release.",
        "Changelog entries are grouped as Added, Changed, Fixed under the new version heading.",
        "Release tags are vX.Y.Z; the tag triggers the deploy workflow.",
        "Database migrations must be backward compatible for one release so rolling deploys work.",
        "Run the full suite, the type check and the front-end build before tagging a release.",
    ],
}

SHORTCUTS: dict[str, list[tuple[str, str]]] = {
    "tests": [("run_module_tests", "Run the tests of one module with uv and pytest, stopping at the first failure.")],
    "migrations": [("new_migration", "Autogenerate an alembic migration for model changes and apply it.")],
    "endpoints": [("add_endpoint", "Create a FastAPI router for a resource, register it and add a test.")],
    "dependencies": [("add_dependency", "Add a package with uv and sync the environment.")],
    "lint": [("format_and_lint", "Format the code with ruff and fix the lint findings.")],
    "release": [("prepare_release", "Bump the version and open a changelog section for a release.")],
}

# The same subjects in another repository: scope must keep them out of the web shop's results.
OTHER_REPO = [
    ("tests", "Run the tests with `make test`; it wraps `go test ./...`."),
    ("tests", "Flaky integration tests are retried twice by the test runner."),
    ("migrations", "Migrations are SQL files in db/migrations, applied with `migrate up`."),
    ("endpoints", "HTTP handlers are registered in cmd/server/routes.go."),
    ("lint", "golangci-lint runs in CI; fix its findings before pushing."),
    ("config", "Configuration is read from config.yaml, overridden by APP_ environment variables."),
    ("release", "Releases are cut with goreleaser from a tag."),
    ("dependencies", "Add dependencies with `go get` and commit go.sum."),
    ("frontend", "The admin UI is a separate repository."),
    ("services", "Start the local stack with `make up`."),
]

# Items that match their topic's queries well but must never be shown: untrusted, candidate, deprecated.
NOT_SHOWN = [
    ("tests", "untrusted", "Run the tests with pytest after installing the requirements the README lists."),
    ("migrations", "candidate", "Apply the database migration with alembic upgrade head before running tests."),
    ("endpoints", "deprecated", "Endpoints are Flask blueprints registered in shop/app.py."),
    ("config", "untrusted", "Put the settings and the DATABASE_URL secret into .env and commit it."),
    ("release", "candidate", "Release by pushing a tag and a changelog entry for the new version."),
]

# (query, topic): a task as a user would write it.
QUERIES: list[tuple[str, str]] = [
    ("The checkout tests fail after my change; run them and fix what breaks", "tests"),
    ("Only run the tests for the cart module while I iterate on it", "tests"),
    ("Speed up the feedback loop: skip the slow test cases locally", "tests"),
    ("Add a `discount_code` column to the orders table", "migrations"),
    ("The alembic upgrade fails after renaming a column in the user model", "migrations"),
    ("Create a migration for the new Invoice model", "migrations"),
    ("CI complains about import order and an unused import", "lint"),
    ("Make the code pass ruff before I commit", "lint"),
    ("The pre-commit hook rejects my commit; fix the formatting", "lint"),
    ("Add a new setting for the payment provider timeout", "config"),
    ("The app will not start locally: DATABASE_URL is missing", "config"),
    ("Introduce a feature flag for the new checkout page", "config"),
    ("Add an endpoint that lists a customer's orders with paging", "endpoints"),
    ("Expose product reviews over the HTTP API", "endpoints"),
    ("Create a REST route for refunds with its request schema", "endpoints"),
    ("Write tests that need a logged-in customer and some products", "fixtures"),
    ("Build test data for orders without constructing models by hand", "fixtures"),
    ("A test depends on the current date; make it deterministic", "fixtures"),
    ("mypy reports missing annotations in the new pricing module", "typing"),
    ("Type check errors after adding the redis client", "typing"),
    ("Make the shipping module pass the strict type check", "typing"),
    ("Log when a payment is declined", "logging"),
    ("Too much noise in the test output from log messages", "logging"),
    ("Add structured logging to the order service", "logging"),
    ("Add the `stripe` package as a dependency", "dependencies"),
    ("The lock file has a merge conflict after rebasing", "dependencies"),
    ("Install a new dev tool for profiling", "dependencies"),
    ("Start the local postgres and redis for development", "services"),
    ("Integration tests cannot connect to the database on port 5432", "services"),
    ("Wipe my local database and start from scratch", "services"),
    ("The product page needs a new button in the web front end", "frontend"),
    ("Front-end build fails after pulling the latest changes", "frontend"),
    ("Add a unit test for the cart widget in the web app", "frontend"),
    ("Prepare release 2.4.0 with a changelog", "release"),
    ("Tag a new version so it gets deployed", "release"),
    ("What has to pass before we cut a release?", "release"),
]
