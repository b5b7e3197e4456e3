"""Adds the plugin to an existing Rasa 3.6 project: ``python -m rasa_safe_hybrid init PATH``.

The plugin is installed like any Python library (``pip install rasa-safe-hybrid``);
this command only writes the project's configuration, each step printed,
nothing that is already there touched:

1. ``config.yml``: writes Rasa's default pipeline and policies out when the
   project relies on auto-configuration (an empty ``pipeline`` would otherwise
   hold only the plugin), then appends ``InputRails`` (pointing its learned
   rails at the sentence encoder, ``--encoder``) and ``LLMResponsePolicy``;
2. ``domain.yml``: adds the ``guardrail_*`` and ``open_question`` intents, the
   plugin's responses, the trace slot and ``action_llm_response``;
3. ``data/llm_plugin.yml``: the rules for the guardrail intents and examples of
   open questions;
4. ``actions/llm_response.py``: registers the plugin's action with the action server;
5. ``endpoints.yml``: the action server's URL and the PII-redacting SQLite
   tracker store, each only when none is configured.

After ``pip install -U rasa-safe-hybrid``, run it again: it adds what is
missing and rewrites the import paths of an older version (the ``components.*``
paths of the copied plugin) in ``config.yml``, ``endpoints.yml``,
``credentials.yml`` and ``actions/``, printing each; a configuration key the
new version no longer takes is refused by ``rasa train`` with a message naming
the key that replaced it.

It refuses, with a message and exit code 2, a folder it cannot read as a
Rasa project.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

PACKAGE = Path(__file__).resolve().parent
MARKER = Path("guardrails") / "registry.py"  # tells an old copy of this plugin from another package
# Import paths of the copied plugin (version 0.1, `components.*`) -> this package's.
OLD_PATHS = {
    "components.input_rails": "rasa_safe_hybrid.nlu.input_rails",
    "components.intent_classifier": "rasa_safe_hybrid.nlu.intent_classifier",
    "components.sentence_featurizer": "rasa_safe_hybrid.nlu.sentence_featurizer",
    "components.emergency_detector": "rasa_safe_hybrid.nlu.emergency_detector",
    "components.llm_response_policy": "rasa_safe_hybrid.policies.llm_response_policy",
    "components.triage_policy": "rasa_safe_hybrid.policies.triage_policy",
    "components.llm_action": "rasa_safe_hybrid.actions.llm_action",
    "components.triage_action": "rasa_safe_hybrid.actions.triage_action",
    "components.action_failure": "rasa_safe_hybrid.actions.action_failure",
    "components.action_server": "rasa_safe_hybrid.actions.server",
    "components.redacting_tracker_store": "rasa_safe_hybrid.stores.redacting_tracker_store",
    "components.stores": "rasa_safe_hybrid.stores",
    "components.channels": "rasa_safe_hybrid.channels",
    "components.install": "rasa_safe_hybrid.init",
    # the shared core kept its place in the package
    **{f"components.{name}": f"rasa_safe_hybrid.{name}"
       for name in ("guardrails", "generation", "retrieval", "config", "embeddings", "emergency")},
}
MIGRATED_FILES = ("config.yml", "endpoints.yml", "credentials.yml")
RASA_DEFAULT_CONFIG = "rasa/engine/recipes/config_files/default_config.yml"

INPUT_RAILS = "rasa_safe_hybrid.nlu.input_rails.InputRails"
POLICY = "rasa_safe_hybrid.policies.llm_response_policy.LLMResponsePolicy"
ACTION = "action_llm_response"
REDACTING_STORE = "rasa_safe_hybrid.stores.redacting_tracker_store.RedactingSQLTrackerStore"
TRACE_SLOT = "llm_trace"
INTENTS = ["guardrail_injection", "guardrail_harmful", "open_question"]
RESPONSES = {
    "utter_guardrail_injection": "I can't change how I work or share my instructions. What else can I help with?",
    "utter_guardrail_harmful": "I can't help with that. If someone is in danger, please contact your local "
                               "emergency number.",
    "utter_llm_fallback": "Sorry, I don't have a good answer to that. Could you ask in another way?",
    "utter_llm_unavailable": "Sorry, I can't answer open questions right now. Please try again later.",
    "utter_action_failed": "Sorry, something went wrong on my side; please try again in a moment.",
    "utter_llm_dont_know": "I don't know that, and I'd rather not guess. Is there something else I can help with?",
    "utter_llm_emergency": "If you or someone else may be in danger, please call your local emergency number now "
                           "(112 / 911 / 999).",
}
DATA_FILE = Path("data") / "llm_plugin.yml"
DATA = '''version: "3.1"
# Added by `python -m rasa_safe_hybrid.init`: what happens when an input rail fires,
# and examples of the open questions the language model answers.
rules:
- rule: prompt injection or jailbreak (plugin)
  steps:
  - intent: guardrail_injection
  - action: utter_guardrail_injection
- rule: harmful request (plugin)
  steps:
  - intent: guardrail_harmful
  - action: utter_guardrail_harmful
nlu:
- intent: open_question
  examples: |
    - why is the sky blue?
    - how do rainbows form
    - what is the capital of france
    - who wrote romeo and juliet
    - how far away is the moon
    - why do cats purr
    - how does a plane stay in the air
    - what is the tallest mountain in the world
    - how many planets are in the solar system
    - tell me a fun fact
    - what is the speed of light
    - why do leaves change colour in autumn
    - who painted the mona lisa
    - how do bees make honey
    - what's the biggest ocean
    - how old is the universe
    - why is the ocean salty
    - how do volcanoes erupt
    - who invented the telephone
    - how does the internet work
'''
ACTIONS_FILE = Path("actions") / "llm_response.py"
ACTIONS = '''"""Registers the safe hybrid assistant plugin's LLM action (added by rasa_safe_hybrid.init)."""

from rasa_safe_hybrid.actions.llm_action import ActionLLMResponse  # noqa: F401
'''


class InstallError(Exception):
    """The project cannot be read or changed safely; the message says why and what to do."""


@dataclass
class Installer:
    """Installs into ``project``; ``changes`` lists what was (or would be) done."""

    project: Path
    generation: Dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    encoder: Optional[Path] = None  # the learned rails' sentence encoder folder
    changes: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._yaml = YAML()  # round trip: keeps the project's comments and order
        self._yaml.indent(mapping=2, sequence=4, offset=2)
        self._yaml.width = 4096  # type: ignore[assignment]  # ruamel declares these None
        self._yaml.preserve_quotes = True  # type: ignore[assignment]

    # -- reading --------------------------------------------------------------
    def check(self) -> None:
        """Refuses what is not a readable Rasa project."""
        if not self.project.is_dir():
            raise InstallError(f"{self.project} is not a folder.")
        if (self.project / "components" / "__init__.py").resolve() == (PACKAGE / "__init__.py").resolve():
            raise InstallError("that is the plugin's own project; give the path of another Rasa project.")
        for name in ("config.yml", "domain.yml"):
            if not (self.project / name).is_file():
                hint = " (a domain split over a folder is not supported yet)" if name == "domain.yml" and (
                    self.project / "domain").is_dir() else ""
                raise InstallError(f"{self.project} has no {name}{hint}: is it a Rasa project (`rasa init`)?")
            data = self._load(self.project / name)
            if not isinstance(data, dict):
                raise InstallError(f"{self.project / name} is not a YAML mapping.")
        if not (self.project / "data").is_dir():
            raise InstallError(f"{self.project} has no data/ folder: is it a Rasa project (`rasa init`)?")
        if self.encoder is None or not (self.encoder / "model.safetensors").exists():
            where = f"{self.encoder} has no model.safetensors" if self.encoder else "no --encoder was given"
            raise InstallError(
                f"the learned rails need the sentence encoder (all-MiniLM-L6-v2) and {where}: pass "
                f"--encoder <folder with model.safetensors> (the rails' `encoder` setting in config.yml)."
            )

    def _load(self, path: Path) -> Any:
        try:
            return self._yaml.load(path.read_text("utf-8"))
        except (YAMLError, UnicodeDecodeError) as error:
            raise InstallError(f"{path} cannot be read as YAML: {error}") from None

    def _save(self, path: Path, data: Any) -> None:
        if self.dry_run:
            return
        buffer = io.StringIO()
        self._yaml.dump(data, buffer)
        path.write_text(buffer.getvalue(), "utf-8")

    def _note(self, change: str) -> None:
        self.changes.append(change)

    # -- steps ----------------------------------------------------------------
    def migrate(self) -> None:
        """Rewrites the import paths of an older, copied version of the plugin (``components.*``)."""
        files = [self.project / name for name in MIGRATED_FILES] + sorted((self.project / "actions").glob("*.py"))
        pattern = re.compile(r"(?<![\w.])(" + "|".join(re.escape(k) for k in OLD_PATHS) + r")(?!\w)")
        for path in files:
            if not path.is_file():
                continue
            text = path.read_text("utf-8")
            new = pattern.sub(lambda m: OLD_PATHS[m.group(1)], text)
            if new != text:
                count = sum(a != b for a, b in zip(text.splitlines(), new.splitlines(), strict=False))
                self._note(f"{path.relative_to(self.project)}: rewrote {count} line(s) from the copied plugin's "
                           f"`components.*` paths to `rasa_safe_hybrid.*`")
                if not self.dry_run:
                    path.write_text(new, "utf-8")
        old_copy = self.project / "components"
        if (old_copy / MARKER).exists():
            self._note(f"{old_copy} is a copy of an older version of the plugin and nothing uses it now: "
                       f"delete it (the installed package is used)")

    def merge_config(self) -> None:
        """Adds the NLU component and the policy to config.yml."""
        path = self.project / "config.yml"
        config = self._load(path)
        defaults = YAML(typ="safe").load(_rasa_default_config().read_text("utf-8"))
        for section in ("pipeline", "policies"):
            if not config.get(section):
                config[section] = defaults[section]
                self._note(f"config.yml: wrote out Rasa's default {section} (the project used auto-configuration)")
        names = {str(item.get("name")) for item in config["pipeline"] if isinstance(item, dict)}
        if INPUT_RAILS not in names:
            entry: Dict[str, Any] = {"name": INPUT_RAILS}
            if self.encoder is not None:
                entry["rails"] = {"encoder": str(self.encoder)}
            config["pipeline"].append(entry)
            self._note(f"config.yml: added {INPUT_RAILS} at the end of the pipeline"
                       + (f" (sentence encoder: {self.encoder})" if self.encoder else ""))
        names = {str(item.get("name")) for item in config["policies"] if isinstance(item, dict)}
        if POLICY not in names:
            policy: Dict[str, Any] = {"name": POLICY, "trigger_intents": ["nlu_fallback", "open_question"]}
            if self.generation:
                policy["generation"] = dict(self.generation)
            config["policies"].append(policy)
            self._note(f"config.yml: added {POLICY} (trigger intents nlu_fallback, open_question)")
        self._save(path, config)

    def merge_domain(self) -> None:
        """Adds intents, responses, the trace slot and the action to domain.yml."""
        path = self.project / "domain.yml"
        domain = self._load(path)
        intents = domain.setdefault("intents", [])
        present = {next(iter(i)) if isinstance(i, dict) else str(i) for i in intents}
        for intent in INTENTS:
            if intent not in present:
                intents.append(intent)
                self._note(f"domain.yml: added intent {intent}")
        responses = domain.setdefault("responses", {})
        for name, text in RESPONSES.items():
            if name not in responses:
                responses[name] = [{"text": text}]
                self._note(f"domain.yml: added response {name}")
        slots = domain.setdefault("slots", {})
        if TRACE_SLOT not in slots:
            slots[TRACE_SLOT] = {"type": "any", "influence_conversation": False, "mappings": [{"type": "custom"}]}
            self._note(f"domain.yml: added slot {TRACE_SLOT} (the per-turn LLM trace)")
        actions = domain.setdefault("actions", [])
        if ACTION not in actions:
            actions.append(ACTION)
            self._note(f"domain.yml: added action {ACTION}")
        self._save(path, domain)

    def write_file(self, relative: Path, text: str) -> None:
        """Writes one of the plugin's own files unless it is already there as written."""
        path = self.project / relative
        if path.exists() and path.read_text("utf-8") == text:
            return
        if path.exists() and path.read_text("utf-8").splitlines()[:2] != text.splitlines()[:2]:
            raise InstallError(f"{path} exists and was not written by this installer; move it away and run again.")
        self._note(f"wrote {relative}")
        if not self.dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            init = path.parent / "__init__.py"
            if relative.parts[0] == "actions" and not init.exists():
                init.write_text("", "utf-8")
            path.write_text(text, "utf-8")

    def merge_endpoints(self) -> None:
        """Sets the action server URL and the redacting tracker store when none is configured."""
        path = self.project / "endpoints.yml"
        endpoints = (self._load(path) if path.exists() else None) or {}
        if not endpoints.get("action_endpoint"):
            endpoints["action_endpoint"] = {"url": "http://localhost:5055/webhook"}
            self._note("endpoints.yml: action_endpoint http://localhost:5055/webhook")
        store = endpoints.get("tracker_store")
        if not store:
            endpoints["tracker_store"] = {"type": REDACTING_STORE, "dialect": "sqlite", "db": "tracker.db"}
            self._note("endpoints.yml: tracker store = RedactingSQLTrackerStore on tracker.db (PII redacted)")
        elif store.get("type") != REDACTING_STORE:
            self._note(f"endpoints.yml: kept your tracker store; use type {REDACTING_STORE} to keep PII out of it")
        self._save(path, endpoints)

    def run(self) -> List[str]:
        """All steps; returns the changes."""
        self.check()
        self.migrate()
        self.merge_config()
        self.merge_domain()
        self.write_file(DATA_FILE, DATA)
        self.write_file(ACTIONS_FILE, ACTIONS)
        self.merge_endpoints()
        return self.changes


def _rasa_default_config() -> Path:
    import rasa

    return Path(rasa.__file__).resolve().parent.parent / RASA_DEFAULT_CONFIG


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``init`` command's arguments."""
    parser.add_argument("project", type=Path, help="folder of the Rasa 3.6 project")
    parser.add_argument("--encoder", type=Path, required=True,
                        help="folder of the learned rails' sentence encoder (all-MiniLM-L6-v2 with model.safetensors)")
    parser.add_argument("--model", help="generation.model: a Hugging Face id or a local folder")
    parser.add_argument("--gguf-file", help="generation.gguf_file: a GGUF file inside --model")
    parser.add_argument("--cache-dir", help="generation.cache_dir: where converted GGUF weights are kept")
    parser.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")


def run(args: argparse.Namespace) -> int:
    """Adds the plugin to ``args.project``; prints what changed."""
    generation = {k: v for k, v in (("model", args.model), ("gguf_file", args.gguf_file),
                                    ("cache_dir", args.cache_dir)) if v}
    installer = Installer(args.project, generation, args.dry_run, args.encoder.expanduser().resolve())
    try:
        changes = installer.run()
    except InstallError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    verb = "would change" if args.dry_run else "changed"
    print(f"{args.project}: {verb} {len(changes)} thing(s)")
    for change in changes:
        print(f"  - {change}")
    print("next: `rasa train`, `rasa run actions` and `rasa run`. With a GGUF model, load it once before "
          "serving (`python -m rasa_safe_hybrid warm --config config.yml`): the first conversion takes tens "
          "of seconds, longer than an action may take.")
    return 0
