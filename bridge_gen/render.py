"""From a plan to the text of each file of the bundle: pure, no I/O.

One Jinja environment: strict about undefined names, no HTML escaping, and
filters that refuse any value that could break out of its line in
mosquitto.conf. The spec checks should have refused such values long
before; reaching a filter with one is a bug, reported as such.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from bridge_gen import plan as plans
from bridge_gen.plan import GatewayPlan, TopicLine


@dataclass(frozen=True)
class RenderedFile:
    name: str
    text: str
    mode: int = 0o644


# Order is the order files are reported in. The access list is written
# only for a gateway with local users.
BUNDLE = (
    ("mosquitto.conf", "mosquitto.conf.j2", 0o644),
    ("acl", "acl.j2", 0o644),
    ("Dockerfile", "Dockerfile.j2", 0o644),
    ("docker-compose.yml", "docker-compose.yml.j2", 0o644),
    ("bridge-entrypoint.sh", "bridge-entrypoint.sh.j2", 0o755),
    (".dockerignore", "dockerignore.j2", 0o644),
)

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class UnsafeValue(AssertionError):
    """A value that would change the meaning of a rendered file."""


def templates_dir() -> Path:
    """The templates: inside the installed package, or the source tree's."""
    packaged = resources.files("bridge_gen") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "templates"


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["conf"] = conf_value
    env.filters["topic"] = conf_topic
    env.filters["topic_lines"] = topic_lines
    env.filters["onoff"] = lambda flag: "true" if flag else "false"
    env.filters["yaml"] = yaml_scalar
    return env


def conf_value(value: Any) -> str:
    """A mosquitto.conf value: one line, no edge spaces, never empty."""
    text = str(value)
    if not text or text != text.strip() or _UNSAFE.search(text):
        raise UnsafeValue(f"refusing to render {text!r} into mosquitto.conf")
    return text


def conf_topic(value: str) -> str:
    """A topic field of a `topic` line: `""` when empty, never with spaces."""
    if value == "":
        return '""'
    if " " in value:
        raise UnsafeValue(f"refusing to render topic {value!r}: it has spaces")
    return conf_value(value)


def topic_lines(lines: tuple[TopicLine, ...]) -> str:
    """A bridge's `topic` directives, a comment above each group of them.

    `topic PATTERN DIRECTION QOS [LOCAL_PREFIX REMOTE_PREFIX]`. Written here
    rather than in the template: a gateway may have tens of thousands.
    """
    out = []
    previous = None
    for line in lines:
        if line.note != previous:
            out.append(f"# {conf_value(line.note)}")
            previous = line.note
        words = [conf_topic(line.pattern), line.direction, str(line.qos)]
        if line.local_prefix or line.remote_prefix:
            words += [conf_topic(line.local_prefix), conf_topic(line.remote_prefix)]
        out.append("topic " + " ".join(words))
    return "\n".join(out)


def yaml_scalar(value: Any) -> str:
    # A JSON string is a valid YAML flow scalar, whatever it contains.
    return json.dumps(str(value), ensure_ascii=False)


def render(
    plan: GatewayPlan, out_dir: Path, *, only: str | None = None
) -> tuple[RenderedFile, ...]:
    """Render every file of the bundle (or `only` one) to write into `out_dir`."""
    env = environment()
    base = out_dir.resolve()
    env_globals = {
        "plan": plan,
        "conf_path": plans.CONF_PATH,
        "label_prefix": plans.LABEL_PREFIX,
        "certs_dir": plans.CERTS_DIR,
        "run_dir": plans.RUN_DIR,
        "data_dir": plans.DATA_DIR,
        "secrets_in": plans.SECRETS_IN,
        "autosave": plans.AUTOSAVE_SECONDS,
        "tmpfs": plans.TMPFS,
        "capabilities": plans.CAPABILITIES,
        "acl_path": plan.layout.acl_path,
        "log_max_size": plans.LOG_MAX_SIZE,
        "log_max_files": plans.LOG_MAX_FILES,
        "folders": tuple(
            dict.fromkeys(os.path.dirname(f.broker_path) for f in plan.files)
        ),
    }
    relative = functools.partial(_relative, base=base)
    out = []
    for name, template, mode in BUNDLE:
        if only is not None and name != only:
            continue
        if name == "acl" and not plan.users:
            continue
        tpl = env.get_template(template)
        text = tpl.render(relative=relative, **env_globals)
        out.append(RenderedFile(name, text, mode))
    return tuple(out)


def render_conf(plan: GatewayPlan) -> str:
    """Only mosquitto.conf, for running the broker outside Docker."""
    return render(plan, Path("."), only="mosquitto.conf")[0].text


def _relative(path: Path, base: Path) -> str:
    # Relative paths keep the bundle usable wherever the spec's folder moves.
    return os.path.relpath(path, base)
