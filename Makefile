# The two quick-start commands bootstrap .venv themselves from a bare python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test serve lint browser speech clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP) speech
	$(BIN)/hygie demo

serve: $(STAMP)
	$(BIN)/hygie serve

# Browser tests drive Debian's chromium; install it when we can (root with apt),
# otherwise those tests skip and say how to install it.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
	      || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
	           apt-get install -y -q chromium >/dev/null; }; } \
	      || echo "chromium could not be installed: browser tests will skip"; \
	  else echo "chromium missing (sudo apt-get install chromium): browser tests will skip"; fi; }

# Spoken phone messages use Debian's espeak-ng; installed like chromium above.
speech:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q espeak-ng >/dev/null 2>&1 \
	      || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive \
	           apt-get install -y -q espeak-ng >/dev/null; }; } \
	      || echo "espeak-ng could not be installed: phone call tests will skip"; \
	  else echo "espeak-ng missing (sudo apt-get install espeak-ng): phone call tests will skip"; fi; }

test: $(STAMP) browser speech
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools

clean:
	rm -rf $(VENV) var .pytest_cache
