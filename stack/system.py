"""Install Debian packages that the stack needs when they are missing."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

logger = logging.getLogger(__name__)

_apt_updated = False


def ensure_debian_package(package: str, command: str) -> str:
    """Return the path of ``command``, installing Debian ``package`` with apt-get if needed."""
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(
            f"{command!r} is not installed and this process is not root; "
            f"run `sudo apt-get install -y {package}` and try again"
        )
    global _apt_updated
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated:
        logger.info("running apt-get update")
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        _apt_updated = True
    logger.info("installing Debian package %s", package)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )
    found = shutil.which(command)
    if not found:
        raise RuntimeError(f"apt-get installed {package} but {command!r} is still not on PATH")
    return found
