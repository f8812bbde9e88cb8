"""Support of the migration chaos suite (issue 9, SPEC §3 I1-I4).

- :mod:`.stack`: the Procfile's seven entries as separate processes, each killable and restartable;
- :mod:`.traffic`: mixed writes on both sides (gateway and legacy), every answer recorded;
- :mod:`.monkey`: breaker flips through admin and SIGKILL + restart of each process;
- :mod:`.checks`: both sides read back through their HTTP APIs, and I1-I4 with exact numbers.
"""
