"""verl 0.9.1's real trainer on a CPU, through verl's own extension points (docs/cpu_backend.md): ``backend``
registers a platform, verl's FSDP engines for device "cpu" and the "hf" rollout in every Ray process, given
``VERL_PLATFORM=cpu VERL_USE_EXTERNAL_MODULES=tools.cpu.backend``; ``tiny`` builds the tiny model and data sets;
``smoke_reward`` is a reward with spread for an untrained model.
"""
