# Conveniences; each target is the same as the `python3 run.py …` command in README.md.
.PHONY: up test bench lint

up:
	python3 run.py up $(ARGS)

test:
	python3 run.py test $(ARGS)

bench:
	python3 run.py bench $(ARGS)

lint:
	.venv/bin/ruff check .
	.venv/bin/mypy synapse_modules bridges bots wangxin_stack wangxin_common
