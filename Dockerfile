# Multi-stage image: build the wheel (the library packages and two console scripts), then install it with a
# CPU torch into a slim runtime. The checkout's scripts (main.py, experiments/) are not part of the image.
#   docker build -t ssm-metarl .
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t ssm-metarl:cuda .
#   docker run ssm-metarl ssm-metarl --env_name Pendulum-v1 --num_epochs 10
#   docker run ssm-metarl ssm-metarl-bench [--section ssm] [--json /app/runs/bench.json]
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core core
COPY meta_rl meta_rl
COPY adaptation adaptation
COPY env_runner env_runner
COPY planning planning
COPY pipeline pipeline
COPY benchmarks benchmarks
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim AS runtime
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 MPLBACKEND=Agg
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
CMD ["ssm-metarl", "--help"]
