"""Offline stand-in for get-pip.py used by ansible-test (installed by make setup).

ansible-test downloads get-pip from a host that is not reachable here. This file takes its
place in ansible-test's cache: it bootstraps pip with ensurepip and then installs what
ansible-test asked for from the configured package index.
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args])
