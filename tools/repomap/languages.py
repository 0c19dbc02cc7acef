"""The languages the repository map reads: file extensions, grammars and the queries that find definitions.

Grammars and definition patterns come from the per-language grammar wheels (each ships its grammar and
`queries/tags.scm`), so a query always runs against the grammar it was written for: the language pack's
older grammars compile the same queries but silently match less (Python's module constants, for one).
tree-sitter-language-pack 0.13.0 (offline; 1.x downloads grammars at run time) is the fallback grammar
source. Our own patterns below add definitions the tags.scm files miss. Their reference patterns are
dropped: every identifier counts as a reference (`ref_types`), which also catches imports, type
annotations and attribute reads.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LanguageSpec:
    """One language: the pack's grammar name, the wheels whose tags.scm apply, our extra patterns."""

    name: str
    extensions: tuple[str, ...]
    tag_wheels: tuple[str, ...]
    extra: str = ""
    ref_types: tuple[str, ...] = ("identifier",)
    grammar: str = ""  # module.function of the wheel's grammar; default tree_sitter_<name>.language
    builtins: frozenset[str] = frozenset()  # names that always mean the language's own (`super`, `Object`)

    @property
    def grammar_ref(self) -> tuple[str, str]:
        module, _, func = (self.grammar or f"tree_sitter_{self.name}.language").partition(".")
        return module, func


_TS_EXTRA = """
(type_alias_declaration name: (type_identifier) @name) @definition.type
(enum_declaration name: (identifier) @name) @definition.enum
"""

_JS_BUILTINS_TEXT = """
    Array ArrayBuffer BigInt Boolean DataView Date Error EvalError Float32Array Float64Array Function Infinity
    Int8Array Int16Array Int32Array Intl JSON Map Math NaN Number Object Promise Proxy RangeError ReferenceError
    Reflect RegExp Set String Symbol SyntaxError TypeError URIError Uint8Array Uint16Array Uint32Array WeakMap
    WeakSet arguments console document exports globalThis module process require undefined window"""
_JS_BUILTINS = frozenset(_JS_BUILTINS_TEXT.split())

LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        "python", (".py", ".pyi"), ("tree-sitter-python",), builtins=frozenset(dir(builtins)) | {"self", "cls"}
    ),
    LanguageSpec(
        "javascript",
        (".js", ".mjs", ".cjs", ".jsx"),
        ("tree-sitter-javascript",),
        ref_types=("identifier", "property_identifier", "shorthand_property_identifier"),
        builtins=_JS_BUILTINS,
    ),
    # TypeScript's tags.scm only adds to JavaScript's: the grammar extends the JavaScript one.
    LanguageSpec(
        "typescript",
        (".ts", ".mts", ".cts"),
        ("tree-sitter-javascript", "tree-sitter-typescript"),
        _TS_EXTRA,
        ("identifier", "property_identifier", "type_identifier", "shorthand_property_identifier"),
        "tree_sitter_typescript.language_typescript",
        _JS_BUILTINS,
    ),
    LanguageSpec(
        "tsx",
        (".tsx",),
        ("tree-sitter-javascript", "tree-sitter-typescript"),
        _TS_EXTRA,
        ("identifier", "property_identifier", "type_identifier", "shorthand_property_identifier"),
        "tree_sitter_typescript.language_tsx",
        _JS_BUILTINS,
    ),
    LanguageSpec(
        "go",
        (".go",),
        ("tree-sitter-go",),
        ref_types=("identifier", "field_identifier", "type_identifier", "package_identifier"),
    ),
    LanguageSpec(
        "rust",
        (".rs",),
        ("tree-sitter-rust",),
        """
(const_item name: (identifier) @name) @definition.constant
(static_item name: (identifier) @name) @definition.constant
(impl_item type: (type_identifier) @name) @definition.impl
""",
        ("identifier", "field_identifier", "type_identifier"),
    ),
    LanguageSpec(
        "java",
        (".java",),
        ("tree-sitter-java",),
        """
(enum_declaration name: (identifier) @name) @definition.enum
(record_declaration name: (identifier) @name) @definition.class
(constructor_declaration name: (identifier) @name) @definition.method
""",
        ("identifier", "type_identifier"),
    ),
    LanguageSpec(
        "c",
        (".c", ".h"),
        ("tree-sitter-c",),
        """
(preproc_def name: (identifier) @name) @definition.macro
(preproc_function_def name: (identifier) @name) @definition.macro
""",
        ("identifier", "field_identifier", "type_identifier"),
    ),
    LanguageSpec(
        "cpp",
        (".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp"),
        ("tree-sitter-cpp",),
        """
(preproc_def name: (identifier) @name) @definition.macro
(preproc_function_def name: (identifier) @name) @definition.macro
(namespace_definition name: (namespace_identifier) @name) @definition.module
""",
        ("identifier", "field_identifier", "type_identifier", "namespace_identifier"),
    ),
    LanguageSpec("ruby", (".rb", ".rake", ".gemspec"), ("tree-sitter-ruby",), ref_types=("identifier", "constant")),
    LanguageSpec(
        "csharp",
        (".cs",),
        ("tree-sitter-c-sharp",),
        """
(struct_declaration name: (identifier) @name) @definition.class
(enum_declaration name: (identifier) @name) @definition.enum
(record_declaration name: (identifier) @name) @definition.class
(constructor_declaration name: (identifier) @name) @definition.method
(property_declaration name: (identifier) @name) @definition.property
""",
        grammar="tree_sitter_c_sharp.language",
    ),
)

BY_EXTENSION: dict[str, LanguageSpec] = {ext: spec for spec in LANGUAGES for ext in spec.extensions}
BY_NAME: dict[str, LanguageSpec] = {spec.name: spec for spec in LANGUAGES}


def language_for(path: str) -> LanguageSpec | None:
    """The language of a file by its extension, or None when the map does not read it."""
    dot = path.rfind(".")
    return BY_EXTENSION.get(path[dot:].lower()) if dot > path.rfind("/") else None


class GrammarMissing(RuntimeError):
    """A grammar or its tags query cannot be loaded (a dependency is missing or broken)."""


@functools.cache
def tags_source(wheel: str) -> str:
    """The text of queries/tags.scm shipped by a grammar wheel."""
    try:
        files = importlib.metadata.distribution(wheel).files or []
    except importlib.metadata.PackageNotFoundError:
        raise GrammarMissing(f"the {wheel} package is not installed (it ships the tags query)") from None
    for file in files:
        if str(file).endswith("queries/tags.scm"):
            return Path(file.locate()).read_text(encoding="utf-8")
    raise GrammarMissing(f"{wheel} has no queries/tags.scm")


def definition_patterns(source: str) -> list[str]:
    """The top-level patterns of a query file that capture a definition (reference patterns dropped)."""
    patterns, depth, start, i = [], 0, 0, 0
    while i < len(source):
        ch = source[i]
        if ch == ";":  # a comment, which may hold parentheses
            i = source.find("\n", i)
            if i < 0:
                break
        elif ch == '"':
            i += 1
            while i < len(source) and source[i] != '"':
                i += 2 if source[i] == "\\" else 1
        elif ch in "([":
            if depth == 0:
                start = i
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth == 0:
                # A pattern may carry a quantifier or captures right after its closing paren.
                end = i + 1
                while end < len(source) and source[end] not in "\n;([":
                    end += 1
                text = source[start:end]
                if "@definition." in text:
                    patterns.append(text)
                i = end - 1
        i += 1
    return patterns


@functools.cache
def queries(name: str) -> tuple[Any, Any, Any]:
    """(Language, definitions query, references query) for a language, built once per process."""
    try:
        from tree_sitter import Query, QueryError
    except ImportError as exc:
        raise GrammarMissing(f"the tree-sitter package is missing: {exc}") from None
    spec = BY_NAME[name]
    language = _language(spec)
    patterns = [p for wheel in spec.tag_wheels for p in definition_patterns(tags_source(wheel))]
    try:
        defs = Query(language, "\n".join(patterns) + "\n" + spec.extra)
        refs = Query(language, "[" + " ".join(f"({t})" for t in spec.ref_types) + "] @ref")
    except QueryError as exc:
        raise GrammarMissing(f"the {name} tags query does not fit its grammar: {exc}") from None
    return language, defs, refs


def _language(spec: LanguageSpec) -> Any:
    """The wheel's grammar (the one its tags.scm was written for), else the language pack's."""
    from tree_sitter import Language

    module, func = spec.grammar_ref
    try:
        return Language(getattr(importlib.import_module(module), func)())
    except (ImportError, AttributeError, ValueError):
        pass
    try:
        from tree_sitter_language_pack import get_language

        return get_language(spec.name)  # type: ignore[arg-type]
    except (ImportError, LookupError) as exc:
        raise GrammarMissing(f"no tree-sitter grammar for {spec.name}: {exc}") from None
