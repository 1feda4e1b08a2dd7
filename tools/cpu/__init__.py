"""verl 0.9.1's real trainer on a CPU: for the end-to-end tests and ``python -m tools.smoke``.

verl cannot run without an accelerator out of the box. ``tools.cpu.backend`` makes it run through verl's
own extension points (a platform, its FSDP engines for device "cpu", an "hf" rollout replica), and touches no
verl file on disk. It is loaded only when asked for, in every Ray process, by

    VERL_PLATFORM=cpu VERL_USE_EXTERNAL_MODULES=tools.cpu.backend

and refuses to load without ``VERL_PLATFORM=cpu``, so a GPU run never picks it up. ``tiny`` builds the tiny model,
tokenizer and data sets; ``smoke_reward`` is a reward with spread for an untrained model.

What it shows of a GPU run, and what it cannot: docs/cpu_backend.md.
"""
