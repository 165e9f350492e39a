"""Fetch jars from Maven Central into a cache, verified by checksums.

Maven itself resolves the dependency tree and checks each download against the
SHA-1 that Maven Central publishes (``--strict-checksums``). The cache keeps a
manifest of SHA-256 sums, so a second run re-verifies the jars and skips Maven.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from stack.system import ensure_debian_package

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Artifact:
    group: str
    name: str
    version: str

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.name}:{self.version}"


def _pom(artifacts: list[Artifact]) -> str:
    dependencies = "\n".join(
        "    <dependency><groupId>{}</groupId><artifactId>{}</artifactId><version>{}</version></dependency>".format(
            escape(a.group), escape(a.name), escape(a.version)
        )
        for a in artifacts
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>seqrec.local</groupId><artifactId>fetch</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(directory: Path) -> list[Path] | None:
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    jars = []
    for name, expected in manifest["sha256"].items():
        jar = directory / name
        if not jar.exists() or sha256(jar) != expected:
            logger.warning("cached jar %s is missing or its SHA-256 changed; fetching again", jar)
            return None
        jars.append(jar)
    return sorted(jars)


def fetch(bundle: str, artifacts: list[Artifact], cache_dir: Path, transitive: bool = True) -> list[Path]:
    """Return the jars of ``artifacts`` (and their runtime dependencies if ``transitive``).

    ``bundle`` names the cache folder, so a change of version fetches anew.
    Raises RuntimeError with Maven's output if the download fails.
    """
    target = cache_dir / bundle
    cached = _verified(target)
    if cached is not None:
        logger.info("using cached %s (%d jars, checksums verified)", bundle, len(cached))
        return cached

    mvn = shutil.which("mvn") or ensure_debian_package("maven", "mvn")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=f".{bundle}-") as work:
        work_dir = Path(work)
        (work_dir / "pom.xml").write_text(_pom(artifacts))
        out_dir = work_dir / "jars"
        command = [
            mvn, "-B", "-q", "--strict-checksums",
            "-f", str(work_dir / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={out_dir}",
            "-DincludeScope=runtime",
            f"-DexcludeTransitive={'false' if transitive else 'true'}",
        ]
        logger.info("fetching %s from Maven Central: %s", bundle, ", ".join(a.coordinates for a in artifacts))
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"Maven could not fetch {bundle} ({', '.join(a.coordinates for a in artifacts)}); "
                f"check the versions and access to Maven Central. Maven said:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
            )
        jars = sorted(out_dir.glob("*.jar"))
        manifest = {
            "artifacts": [a.coordinates for a in artifacts],
            "sha256": {jar.name: sha256(jar) for jar in jars},
        }
        (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if target.exists():
            shutil.rmtree(target)
        out_dir.rename(target)
    logger.info("fetched %s: %d jars into %s", bundle, len(jars), target)
    return sorted(target.glob("*.jar"))
