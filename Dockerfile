# Multi-stage image: build the wheel (the library packages and two console scripts), then install it with a
# CPU torch into a slim runtime, with main.py and the experiments' scripts in /app. No ENTRYPOINT.
#   docker build -t ssm-metarl .
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t ssm-metarl:cuda .
#   docker run ssm-metarl python main.py --env_name Pendulum-v1 --num_epochs 10     (or: ssm-metarl ...)
#   docker run ssm-metarl python experiments/quick_benchmark.py [--section ssm]     (or: ssm-metarl-bench ...)
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
COPY experiments experiments
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
COPY main.py ./
COPY experiments experiments
CMD ["ssm-metarl", "--help"]
