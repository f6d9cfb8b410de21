# Multi-stage image: build the wheel, then install it with a CPU torch into a slim runtime.
#   docker build -t ssm-metarl .
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t ssm-metarl:cuda .
#   docker run ssm-metarl python main.py --env_name Pendulum-v1 --num_epochs 10
#   docker run ssm-metarl python experiments/quick_benchmark.py
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md main.py ./
COPY core core
COPY meta_rl meta_rl
COPY adaptation adaptation
COPY env_runner env_runner
COPY control control
COPY pipeline pipeline
COPY experiments experiments
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
