# The course's commands. The README documents `make lab` and `make test`; the rest are for
# maintainers and instructors.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Extra arguments for JupyterLab, e.g. make lab LAB_ARGS="--no-browser --port=8899"
LAB_ARGS ?=
# Jupyter refuses to run as root (containers, some CI machines) unless told it may.
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test unit nbval nbval-portable test-oldest notebooks exercises student slides lint format constraints clean-venv

# (Re)create the virtual environment whenever the package or its pinned versions change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -c "import course_lib; print(course_lib.config.environment_summary())"
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(ROOT_ARGS) $(LAB_ARGS)

# Unit tests, then every notebook under nbval with the quick profile, in one pytest run.
test: $(STAMP)
	COURSE_PROFILE=quick $(BIN)/python -m pytest tests notebooks \
		--nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

unit: $(STAMP)
	COURSE_PROFILE=quick $(BIN)/python -m pytest tests

nbval: $(STAMP)
	COURSE_PROFILE=quick $(BIN)/python -m pytest notebooks \
		--nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

# The nbval half again as another CPU would run it: torch's scalar kernels, oneDNN limited to
# SSE4.1, numpy's optional CPU features and OpenCV's optimised paths off, OpenBLAS's Haswell
# kernels, one thread, and an empty evaluation cache. Every checked output must still match.
PORTABLE_ENV = ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 OMP_NUM_THREADS=1 \
	OPENBLAS_CORETYPE=Haswell COURSE_OPENCV_OPTIMIZED=0 \
	NPY_DISABLE_CPU_FEATURES="$$($(BIN)/python -c 'import numpy._core._multiarray_umath as m; print(" ".join(m.__cpu_dispatch__))')"

nbval-portable: $(STAMP)
	cache=$$(mktemp -d) && $(PORTABLE_ENV) COURSE_PROFILE=quick COURSE_CACHE_DIR=$$cache \
		$(BIN)/python -m pytest notebooks --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider; \
		status=$$?; rm -rf $$cache; exit $$status

# The oldest versions pyproject.toml promises, as on Colab: the unit tests and every lesson
# under nbval in a second environment, .venv-oldest (the checked outputs print at the precision
# their claims need, so they hold with another torch too). Everything else keeps the versions
# of constraints.txt. Python 3.12 (Colab's) when this machine has it, else the default python3.
OLDEST_VENV     ?= .venv-oldest
OLDEST_PYTHON   ?= $(firstword $(shell for p in python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12; \
	do $$p -c "" 2> /dev/null && echo $$p; done) $(PYTHON))
OLDEST_VERSIONS := torch==2.4.0 torchvision==0.19.0 ipywidgets==7.7.5
test-oldest:
	test -x $(OLDEST_VENV)/bin/python || $(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	grep -v -E '^(torch|torchvision|triton|nvidia-|cuda-|ipywidgets|widgetsnbextension|jupyterlab_widgets)[=-]' \
		constraints.txt > $(OLDEST_VENV)/constraints.txt
	$(OLDEST_VENV)/bin/python -m pip install --quiet -c $(OLDEST_VENV)/constraints.txt \
		-e ".[dev]" $(OLDEST_VERSIONS)
	$(OLDEST_VENV)/bin/python -c "import course_lib; print(course_lib.config.environment_summary())"
	COURSE_PROFILE=quick $(OLDEST_VENV)/bin/python -m pytest tests notebooks \
		--nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

# Execute every lesson in place, in order, from a fresh kernel, under the quick profile.
notebooks: $(STAMP)
	COURSE_PROFILE=quick $(BIN)/python tools/execute_notebooks.py notebooks/[0-9][0-9]_*.ipynb

# Every exercise check against its plausible wrong answers (tests/exercise_wrong_answers.py):
# each lesson runs once in a kernel, then each wrong answer must fail its check, each solution pass.
exercises: $(STAMP)
	COURSE_PROFILE=quick $(BIN)/python tools/check_exercises.py notebooks/[0-9][0-9]_*.ipynb

# Student copies of the lessons in student/: each solution block becomes a placeholder.
student: $(STAMP)
	$(BIN)/python tools/make_student.py notebooks/[0-9][0-9]_*.ipynb --out student

# A reveal.js deck per lesson in slides/, from the notebooks' slideshow metadata.
slides: $(STAMP)
	$(BIN)/python tools/make_slides.py notebooks/[0-9][0-9]_*.ipynb --out slides

lint: $(STAMP)
	$(BIN)/ruff check course_lib tests tools notebooks datasets
	$(BIN)/ruff format --check course_lib tests tools datasets

format: $(STAMP)
	$(BIN)/ruff check --fix course_lib tests tools notebooks datasets
	$(BIN)/ruff format course_lib tests tools datasets

# Refresh constraints.txt from a fresh environment (after editing pyproject.toml). The torch and
# torchvision pins are kept from the current constraints.txt, the one place they are written:
# to move to another torch, edit those two lines first.
TORCH_PINS = $(shell grep -E '^(torch|torchvision)==' constraints.txt)
constraints:
	rm -rf .constraints-venv
	$(PYTHON) -m venv .constraints-venv
	.constraints-venv/bin/python -m pip install --quiet -e ".[dev]" $(TORCH_PINS)
	{ echo "# Exact versions CI and 'make test' install (pip install -c constraints.txt ...)."; \
	  echo "# Regenerate with 'make constraints' after changing pyproject.toml; see README."; \
	  .constraints-venv/bin/python -m pip freeze --exclude-editable; } > constraints.txt
	rm -rf .constraints-venv

clean-venv:
	rm -rf $(VENV)
