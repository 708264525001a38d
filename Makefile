# edge_perception — two commands do everything on a fresh machine:
#   make run    set up, then play the bundled sample clip through the pipeline
#   make test   set up, then run the test suite
# `make setup` is idempotent: each step re-runs only when its inputs change.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
RUN_ARGS ?= --config config/params.yaml --nodes camera_node detector_node --duration 30
TEST_ARGS ?=

MSG_SRC := $(wildcard edge_perception_msgs/msg/*.msg) edge_perception_msgs/CMakeLists.txt \
           edge_perception_msgs/package.xml

.PHONY: setup run test lint clean msgs

setup: $(VENV)/.stamp-pkg

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.stamp-reqs: requirements.txt | $(VENV)/bin/python
	$(PIP) install --quiet -r requirements.txt
	touch $@

# The interface package, built with plain CMake from the rosidl wheels and installed into the
# venv (on a vehicle, colcon builds it instead: see the README).
$(VENV)/.stamp-msgs: $(MSG_SRC) $(VENV)/.stamp-reqs
	rm -rf build/edge_perception_msgs
	mkdir -p build/edge_perception_msgs
	cd build/edge_perception_msgs && \
	  AMENT_PREFIX_PATH=$(abspath $(VENV)) CMAKE_PREFIX_PATH=$(abspath $(VENV)) \
	  cmake $(abspath edge_perception_msgs) -DCMAKE_INSTALL_PREFIX=$(abspath $(VENV)) \
	    -DPython3_EXECUTABLE=$(abspath $(PY)) -DBUILD_TESTING=OFF > cmake.log && \
	  $(MAKE) --no-print-directory -j2 > build.log && $(MAKE) --no-print-directory install > install.log
	$(PY) -c "import edge_perception_msgs.msg"
	touch $@

$(VENV)/.stamp-pkg: setup.py setup.cfg $(VENV)/.stamp-msgs
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $@

msgs: $(VENV)/.stamp-msgs

run: setup
	$(VENV)/bin/edge-perception run $(RUN_ARGS)

test: setup
	$(PY) -m pytest $(TEST_ARGS)

clean:
	rm -rf build $(VENV) .pytest_cache
