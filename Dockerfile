# The pairbench image: the runner, the locust workers and the targets app of compose.yaml.
# It installs the package the README's quick start installs (the checkout, no extras), here
# as a regular install: nothing edits the code in the image. PostgreSQL and Valkey run in their
# own containers (compose.yaml); the wheels' embedded servers are installed but unused.
# The interpreter is the one the README's figures were measured with (3.11.7; 3.11+ works).
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PAIRBENCH_STATE_DIR=/state

# The build context is the checkout, less what .dockerignore leaves out (tests, docs, runs).
COPY . /src
RUN pip install --no-cache-dir /src && rm -rf /src && mkdir -p /results /state /work
# Not the checkout: there its `pairbench/` folder would shadow the installed package, which
# maps harness/, targets/ and results/ into it (`python -m pairbench.targets` would fail).
WORKDIR /work

# The targets app's port in compose.yaml (uvicorn --port 8000).
EXPOSE 8000
CMD ["pairbench", "--help"]
