"""The last good gateway configuration, kept on disk so that workers can start without the
process that gave them their configuration.

What is kept is the YAML *source* that every worker reported running, not the parsed
result: ``${ENV}`` references (how consumer keys and JWT secrets are meant to be given)
stay references and are resolved again from the environment when the file is read, so no
secret the operator kept out of the file is written to disk by hypercare. The file is
replaced atomically and readable by its owner only.

    save(data_dir / "gateway", text)        # after the workers reported ready with it
    config = load(data_dir / "gateway")     # None when nothing was kept yet
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from hypercare.config import HypercareConfig, parse_config
from hypercare.errors import ConfigError

FILE_NAME = "last-good.yaml"
MAX_BYTES = 4 * 1024 * 1024  # a gateway configuration is kilobytes; refuse to read a huge file


def path_in(directory: Path) -> Path:
    return directory / FILE_NAME


def save(directory: Path, text: str) -> Path:
    """Write `text` as the last good configuration (atomic replace, mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = path_in(directory)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target


def load(directory: Path) -> HypercareConfig | None:
    """The last good configuration, or None when none was kept; ConfigError (naming the
    file and line) when the file cannot be read or is no longer valid, e.g. because an
    environment variable it refers to is not set in this process."""
    target = path_in(directory)
    try:
        with open(target, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{target}: cannot read the last good configuration: {exc}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{target}: over {MAX_BYTES} bytes, not a kept configuration")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{target}: not UTF-8 text") from None
    return parse_config(text, str(target))
