#!/usr/bin/env bash
# Debian packages the dataset builders read (mmembed/data/builders/sources.py):
#   fonts-noto-color-emoji  emoji images        unicode-cldr-core  names/keywords in ~130 locales
#   fonts-symbola           black-and-white emoji outlines (the eval-only emoji-styles dataset)
#   openclipart-png/-svg    clip-art drawings and their metadata
#   tuxpaint-stamps-default photos and drawings with descriptions translated into ~100 languages
#   gcompris-qt-data        whole-scene photographs with names and descriptions in ~45 languages
#   scratch palapeli-data   whole-scene photographs (the eval-only debian-photos dataset)
#   libgtk2.0-common libglib2.0-data ... shared-mime-info   gettext UI catalogs (gettext-ui dataset)
#   dict-freedict-eng-swh ... dict-freedict-eng-ara  FreeDict bilingual dictionaries (freedict dataset, query glossing)
#   dict-freedict-eng-deu/-fra/-spa/-rus  FreeDict dictionaries that query glossing reads (mmembed/glossary.py)
# and the fonts the evaluation plots fall back on for non-Latin labels (mmembed/evaluation/fonts.py):
#   fonts-noto-core  Arabic, Indic, Thai, Ethiopic... scripts   fonts-wqy-microhei  CJK incl. Hangul
#   fonts-droid-fallback  rare CJK ideographs (yue, zh_Hant_HK)
# and from npm: openmoji (OpenMoji emoji drawings, the openmoji dataset), installed globally where npm is present.
# Idempotent and quick when everything is installed: apt and npm are only called for missing packages.
set -euo pipefail

OPENMOJI=openmoji@17.0.0
npm_deps() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "system-deps: npm not found: the openmoji dataset cannot be built (install nodejs/npm, then npm install -g $OPENMOJI)"
    return 0
  fi
  local root
  root=$(npm root -g 2>/dev/null || true)
  if [ -n "$root" ] && [ "$(node -p "require('$root/openmoji/package.json').version" 2>/dev/null)" = "${OPENMOJI#*@}" ]; then
    return 0
  fi
  echo "system-deps: npm install -g $OPENMOJI"
  npm install -g --no-fund --no-audit "$OPENMOJI" >/dev/null \
    || echo "system-deps: WARNING: npm install -g $OPENMOJI failed: the openmoji dataset cannot be built"
}
npm_deps

PACKAGES=(fonts-noto-color-emoji fonts-symbola unicode-cldr-core openclipart-png openclipart-svg tuxpaint-stamps-default
          gcompris-qt-data scratch palapeli-data fonts-noto-core fonts-wqy-microhei fonts-droid-fallback
          apt at-spi2-common gsettings-desktop-schemas libapt-pkg6.0 libavahi-common-data libgdk-pixbuf2.0-common
          libglib2.0-data libgtk2.0-common libpam-runtime python-apt-common shared-mime-info
          dict-freedict-eng-swh dict-freedict-swh-eng dict-freedict-eng-hin dict-freedict-eng-ara
          dict-freedict-eng-deu dict-freedict-eng-fra dict-freedict-eng-spa dict-freedict-eng-rus)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "system-deps: all installed (${PACKAGES[*]})"
  exit 0
fi

# `env` carries DEBIAN_FRONTEND through sudo, which resets the environment
APT=(env DEBIAN_FRONTEND=noninteractive apt-get)
if [ "$(id -u)" -ne 0 ]; then APT=(sudo "${APT[@]}"); fi
echo "system-deps: installing ${missing[*]}"
"${APT[@]}" update -q
"${APT[@]}" install -y -q --no-install-recommends "${missing[@]}"
