# syntax=docker/dockerfile:1
# swarmnode on an NVIDIA GPU with vLLM. Build from the repository root:
#   docker build -f docker/gpu.Dockerfile -t swarmnode:gpu .
#   docker run --gpus all -v swarmnode-data:/data swarmnode:gpu join --swarm demo --peers ... --config /data/node.toml
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/data \
    PATH=/opt/venv/bin:$PATH

# the base image's own python3: 3.12 on Ubuntu 24.04 (its security updates decide the patch release)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && useradd --create-home --home-dir /home/swarm --uid 10001 swarm \
    && mkdir -p /data /shared && chown swarm:swarm /data /shared

WORKDIR /opt/swarmnode
COPY pyproject.toml README.md LICENSE ./
COPY protocol ./protocol
COPY swarmnode ./swarmnode

# the CUDA build of torch 2.13.0 (PyPI's default on Linux), then vLLM built for it; `.` pins all its
# dependencies in pyproject.toml, which hadolint cannot see
# hadolint ignore=DL3013
RUN pip install torch==2.13.0 && pip install ".[vllm]"

USER 10001:10001
VOLUME ["/data"]
EXPOSE 31337 7391

HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request as u; t=os.environ.get('STATUS_TOKEN',''); u.urlopen(u.Request('http://127.0.0.1:7391/status', headers={'Authorization': 'Bearer '+t} if t else {}), timeout=4)"]

ENTRYPOINT ["swarmnode"]
CMD ["join", "--swarm", "swarmnode-default", "--run-dir", "/data/run", "--backend", "vllm"]
