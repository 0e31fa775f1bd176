"""Behaviour cloning from expert demonstrations, to start a policy before (or instead of) PPO.

Why: on VM rescheduling the exact CP-SAT reference reaches ~1.5x the FR reduction of the greedy
heuristic, but PPO from scratch needs hundreds of thousands of M-size steps to get past greedy,
which is a GPU machine's work. Cloning the solver's plans is a supervised problem that runs on a
CPU: the expert (an environment's ``EXPERTS`` entry, e.g. :class:`rlsys_envs.vm.expert.CPSatExpert`)
plays seeded episodes and records, per step, the set of actions it accepts
(:class:`rlsys_envs.core.Demonstration`); the policy is trained to put its probability mass on
that set.

Loss per step (masked policy distribution ``pi``, accepted set ``T``, expert return-to-go ``G``)::

    -log sum_{a in T} pi(a | s)  +  value_coef * (V(s) - G)^2

The first term is the likelihood of "some accepted action", so the policy is not punished for
choosing among equivalent ones; the second fits the value head to the expert's returns, so that a
PPO run started from the cloned policy does not begin with a random critic.

Demonstrations are replayed in the environment to get observations (a few ms per step), a chunk
of episodes at a time, so memory stays bounded on large observations (M-size VM graphs are about
0.3 MB per step). They are cached as JSON lines, so an interrupted run does not ask the (slow)
expert again.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Sequence

import gymnasium as gym
import numpy as np

from rlsys_envs.core import Demonstration


def expert_factory(env_id: str, name: str) -> Callable[..., object]:
    """The class of expert ``name`` of ``env_id``; ``ValueError`` listing the known ones otherwise."""
    import rlsys_envs

    known = rlsys_envs.experts(env_id)
    if name not in known:
        raise ValueError(f"pretrain.expert: {name!r} is not an expert of {env_id}; known: "
                         f"{', '.join(known) or 'none'}")
    return known[name]


def demonstrations_key(env_id: str, env_kwargs: dict, expert: str, expert_kwargs: dict) -> str:
    """Cache key of a demonstration: env, its kwargs, expert, its kwargs and its ``version`` (an expert
    bumps it when what it records changes, e.g. its accepted sets)."""
    version = getattr(expert_factory(env_id, expert), "version", 1)
    spec = json.dumps({"env": env_id, "kwargs": env_kwargs, "expert": expert, "expert_kwargs": expert_kwargs,
                       "version": version}, sort_keys=True, default=str)
    return hashlib.sha1(spec.encode()).hexdigest()[:12]


def _demonstrate(env_id: str, env_kwargs: dict, expert: str, expert_kwargs: dict, job) -> Demonstration:
    """One demonstration (``job`` = ``(seed, prefix)``) in a fresh env (module level, so worker
    processes can run it)."""
    import torch

    from .evaluation import make_env

    torch.set_num_threads(1)
    seed, prefix = job
    env = make_env(env_id, env_kwargs)
    try:
        expert_obj = expert_factory(env_id, expert)(**expert_kwargs)
        if prefix:
            return expert_obj.demonstrate(env, int(seed), prefix=prefix)
        return expert_obj.demonstrate(env, int(seed))
    finally:
        env.close()


def learner_prefixes(policy, env_id: str, env_kwargs: dict, seeds: list[int], seed: int = 0,
                     cut_from: float = 0.0) -> dict[int, list[int]]:
    """DAgger's learner states: for each episode seed, the actions of ``policy`` (deterministic,
    masked) from ``reset(seed)`` up to a cut point drawn uniformly (numpy generator seeded by
    ``seed`` and the episode seed) among the steps after its first action where the expert can take
    over (the env's ``at_decision_boundary()``: every step, or in a two-stage env only between
    complete decisions).
    ``cut_from`` in [0, 1) leaves out that fraction of the earliest cut points, so the expert takes
    over late in the learner's episode (where a clone's own mistakes have piled up).
    """
    if not 0.0 <= cut_from < 1.0:
        raise ValueError(f"cut_from must be in [0, 1); got {cut_from!r}")
    from .evaluation import make_env

    env = make_env(env_id, env_kwargs)
    base = env.unwrapped
    out = {}
    for s in seeds:
        obs, _ = env.reset(seed=int(s))
        actions, cuts = [], []
        while True:
            a, _ = policy.predict(obs, deterministic=True, action_masks=base.action_masks())
            a = np.asarray(a).reshape(-1)
            a = [int(x) for x in a] if isinstance(env.action_space, gym.spaces.MultiDiscrete) else int(a[0])
            obs, _r, terminated, truncated, _i = env.step(a)
            actions.append(a)
            if terminated or truncated:
                break
            if base.at_decision_boundary():
                cuts.append(len(actions))
        cuts = cuts[int(cut_from * len(cuts)):]
        if cuts:
            k = cuts[int(np.random.default_rng([seed, int(s)]).integers(len(cuts)))]
            out[int(s)] = actions[:k]
    env.close()
    return out


def collect_demonstrations(env_id: str, env_kwargs: dict, expert: str, expert_kwargs: dict, seeds: list[int],
                           cache: Path | None = None, log=print, progress: bool = True, workers: int = 1,
                           prefixes: Callable[[list[int]], dict[int, list[int]]] | None = None,
                           sources: Sequence[Path] = ()) -> list[Demonstration]:
    """Demonstrations of ``expert`` for every seed, read from / appended to the JSON-lines ``cache``.

    A cache line records the env spec it belongs to; lines of another spec are ignored, so changing
    the env or expert kwargs never reuses stale plans. ``sources``: other caches, only read (e.g. the
    other training seeds' of one experiment, whose stage-0 plans do not depend on the training seed);
    the records of this spec found there and not in ``cache`` are copied into it, and a part-written
    last line (a run still appending) is skipped. ``workers > 1`` runs the expert in that many
    processes (each expert call is single-threaded, e.g. CP-SAT with one worker). ``prefixes``
    (DAgger): called with the seeds still to make, returns the learner actions to play before the
    expert takes over, per seed (see :func:`learner_prefixes`); seeds it leaves out are skipped.
    """
    key = demonstrations_key(env_id, env_kwargs, expert, expert_kwargs)
    have: dict[int, Demonstration] = {}
    if cache is not None and cache.is_file():
        text = cache.read_text()
        if text != _whole_lines(text):
            # a run killed while appending a record: drop the part-written line (appends go on after it)
            text = _whole_lines(text)
            from .files import write_atomic

            write_atomic(cache, text)
        have = {seed: demo for seed, (demo, _line) in _cached_records(cache, text, key).items()}
    if prefixes is None:            # a DAgger demonstration depends on the learner: never borrowed
        borrowed = _borrow(sources, key, {int(s) for s in seeds} - set(have), cache)
        have.update(borrowed)
        if borrowed:
            log(f"  expert {expert}: {len(borrowed)} demonstrations read from other runs' caches")
    todo = [s for s in seeds if s not in have]
    if todo:
        from concurrent.futures import ProcessPoolExecutor
        from functools import partial

        from tqdm import tqdm

        expert_factory(env_id, expert)(**expert_kwargs)   # bad name / kwargs: fail here, not in a worker
        log(f"  expert {expert}: {len(todo)} demonstrations to make ({len(have)} cached, {workers} worker(s))")
        t0 = time.perf_counter()
        if prefixes is not None:
            pre = prefixes(todo)
            todo = [s for s in todo if s in pre]
            jobs = [(s, pre[s]) for s in todo]
        else:
            jobs = [(s, None) for s in todo]
        make = partial(_demonstrate, env_id, env_kwargs, expert, expert_kwargs)
        pool = ProcessPoolExecutor(workers) if workers > 1 else None
        try:
            results = pool.map(make, jobs) if pool else map(make, jobs)
            for s, demo in tqdm(zip(todo, results), total=len(todo), desc=f"expert {expert}",
                                disable=not progress, leave=False):
                have[int(s)] = demo
                if cache is not None:  # one line per demonstration as it comes: a killed run keeps them
                    rec = json.loads(demo.to_json())
                    rec["key"] = key
                    with cache.open("a") as f:
                        f.write(json.dumps(rec) + "\n")
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)
        log(f"  expert {expert}: {len(todo)} demonstrations in {time.perf_counter() - t0:.0f} s")
    return [have[s] for s in seeds if s in have]


def _whole_lines(text: str) -> str:
    """``text`` up to its last newline: without the part-written line of a run still (or killed while)
    appending."""
    return text[:text.rfind("\n") + 1]


def _cached_records(path: Path, text: str, key: str,
                    seeds: set[int] | None = None) -> dict[int, tuple[Demonstration, str]]:
    """``{seed: (demonstration, line)}`` of the records of spec ``key`` (of ``seeds`` only, when given)
    in the JSON-lines ``text`` of the cache ``path``; a line that is not a record names file and line."""
    found: dict[int, tuple[Demonstration, str]] = {}
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if rec.get("key") == key and (seeds is None or int(rec["seed"]) in seeds):
                found[int(rec["seed"])] = (Demonstration.from_json(line), line)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{n}: not a demonstration record ({e}); "
                             f"delete the file to rebuild it") from None
    return found


def _borrow(sources: Sequence[Path], key: str, wanted: set[int], cache: Path | None) -> dict[int, Demonstration]:
    """The demonstrations of ``key`` for the ``wanted`` seeds in the read-only caches ``sources``
    (whole lines only: a source may be mid-append), appended to ``cache`` (when given) in one write."""
    found: dict[int, Demonstration] = {}
    lines: list[str] = []
    for source in sources:
        missing = wanted - found.keys()
        if not missing:
            break
        if cache is not None and Path(source).resolve() == Path(cache).resolve():
            continue
        try:
            text = Path(source).read_text()
        except OSError:
            continue
        for seed, (demo, line) in _cached_records(source, _whole_lines(text), key, missing).items():
            found[seed] = demo
            lines.append(line)
    if cache is not None and lines:
        with cache.open("a") as f:
            f.writelines(lines)
    return found


def replay(env, demo: Demonstration):
    """Observations, action masks, accepted-action masks and returns-to-go of one demonstration."""
    obs, _info = env.reset(seed=demo.seed)
    base = env.unwrapped
    space = env.action_space
    if isinstance(space, gym.spaces.MultiDiscrete):   # flat per-component layout (Demonstration.targets)
        offsets = np.concatenate([[0], np.cumsum(space.nvec)[:-1]]).astype(np.int64)
        n_actions = int(np.sum(space.nvec))
    else:
        offsets, n_actions = None, int(space.n)
    observations, masks, accepted, rewards = [], [], [], []
    for i, (a, t) in enumerate(zip(demo.actions, demo.targets)):
        mask = np.asarray(base.action_masks(), bool)
        flat = a if offsets is None else offsets + np.asarray(a, np.int64)
        if not np.all(mask[flat]):
            raise ValueError(f"demonstration of seed {demo.seed}: step {i} action {a} is not legal in the env; "
                             f"was it made with other env kwargs?")
        acc = np.zeros(n_actions, bool)
        acc[t] = True
        if offsets is not None and not np.all(acc[flat]):
            raise ValueError(f"demonstration of seed {demo.seed}: step {i} action {a} is not among its accepted "
                             f"values")
        if offsets is not None:
            a = np.asarray(a, np.int64)
        observations.append(obs if i >= demo.prefix else None)   # learner steps: only the state matters
        masks.append(mask)
        accepted.append(acc & mask)
        obs, r, terminated, truncated, _info = env.step(a)
        rewards.append(r)
        if (terminated or truncated) and i + 1 < len(demo.actions):
            raise ValueError(f"demonstration of seed {demo.seed} ends after {i + 1} of {len(demo.actions)} steps "
                             f"in the env; was it made with other env kwargs?")
    returns = np.cumsum(np.asarray(rewards, np.float64)[::-1])[::-1].astype(np.float32)
    k = demo.prefix  # the learner's steps lead to the expert's start state; they are not imitated
    return observations[k:], masks[k:], accepted[k:], returns[k:]


def logits_and_values(policy, obs: dict):
    """Action logits ``[B, n]`` (unmasked) and values ``[B, 1]`` of an SB3 actor-critic policy, one
    feature pass where the policy allows it (:class:`rlsys_agents.policies.PointerPolicy`)."""
    if hasattr(policy, "logits_and_values"):
        return policy.logits_and_values(obs)
    features = policy.extract_features(obs)
    if policy.share_features_extractor:
        latent_pi, latent_vf = policy.mlp_extractor(features)
    else:
        pi_features, vf_features = features
        latent_pi = policy.mlp_extractor.forward_actor(pi_features)
        latent_vf = policy.mlp_extractor.forward_critic(vf_features)
    return policy.action_net(latent_pi), policy.value_net(latent_vf)


def action_components(space) -> list[int]:
    """The sizes of the independent categorical parts of an action space: ``[n]`` for
    ``Discrete(n)``, ``nvec`` for a ``MultiDiscrete`` (SB3's logits are their concatenation)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return [int(space.n)]
    if isinstance(space, spaces.MultiDiscrete):
        return [int(n) for n in np.asarray(space.nvec).ravel()]
    raise ValueError(f"behaviour cloning needs a Discrete or MultiDiscrete action space, got {space}")


def accepted_nll(logits, masks, accepted, components: list[int]):
    """Behaviour-cloning terms of flat logits ``[B, sum(components)]`` (SB3's layout) under
    ``masks`` and the expert's ``accepted`` values, both ``[B, sum(components)]``: the negative
    log-probability that every component takes an accepted value (a sum over the independent
    components of ``-log sum_{v accepted} pi(v)``, each a softmax over its legal values), and
    whether every component's most likely legal value is accepted (``[B]``, float). Per
    component, not one softmax over the concatenation: there, one component's sure value would
    satisfy the whole step and the others would learn nothing."""
    import torch

    masks = torch.as_tensor(masks, dtype=torch.bool, device=logits.device).reshape(logits.shape)
    accepted = torch.as_tensor(accepted, dtype=torch.bool, device=logits.device).reshape(logits.shape) & masks
    nll = torch.zeros(logits.shape[0], device=logits.device)
    hit = torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device)
    start = 0
    for n in components:
        lp = logits[:, start: start + n].masked_fill(~masks[:, start: start + n], -torch.inf)
        acc = accepted[:, start: start + n]
        nll = nll - (torch.logsumexp(lp.masked_fill(~acc, -torch.inf), -1) - torch.logsumexp(lp, -1))
        hit &= acc.gather(1, lp.argmax(-1, keepdim=True)).squeeze(1)
        start += n
    return nll, hit.float()


def _stack(observations: list[dict], idx: np.ndarray, device) -> dict:
    import torch

    return {k: torch.as_tensor(np.stack([observations[i][k] for i in idx]), device=device)
            for k in observations[0]}


def behaviour_clone(policy, env_id: str, env_kwargs: dict, demos: list[Demonstration], epochs: int = 10,
                    batch_size: int = 32, learning_rate: float = 1e-3, value_coef: float = 0.5,
                    chunk_episodes: int = 16, seed: int = 0, logger=None, log=print,
                    on_epoch: Callable[[int, dict], None] | None = None, start_epoch: int = 0,
                    log_step_offset: int = 0) -> list[dict]:
    """Train ``policy`` (a MaskablePPO policy, e.g. :class:`rlsys_agents.policies.PointerPolicy`) on ``demos``.

    Each epoch shuffles the episodes (numpy generator seeded by ``seed`` and the epoch), replays
    ``chunk_episodes`` at a time and takes Adam steps on shuffled minibatches of their steps.
    Returns per-epoch statistics: loss, accuracy (the policy's most likely action is accepted),
    value error; ``logger`` (an SB3 logger) gets them as ``pretrain/*``. ``on_epoch(epoch, stats)``
    runs after each epoch (checkpointing); ``logger`` steps are ``log_step_offset + epoch``.
    """
    import torch

    from .evaluation import make_env

    if not demos:
        raise ValueError("behaviour_clone: no demonstrations")
    device = policy.device
    opt = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    env = make_env(env_id, env_kwargs)
    history = []
    policy.set_training_mode(True)
    for epoch in range(start_epoch, epochs):
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(demos))
        t0 = time.perf_counter()
        sums = {"loss": 0.0, "nll": 0.0, "accuracy": 0.0, "value_mse": 0.0}
        n_steps = 0
        for c0 in range(0, len(order), chunk_episodes):
            observations, masks, accepted, returns = [], [], [], []
            for d in order[c0: c0 + chunk_episodes]:
                o, m, a, g = replay(env, demos[d])
                observations += o
                masks += m
                accepted += a
                returns.append(g)
            masks_np, acc_np, ret_np = np.stack(masks), np.stack(accepted), np.concatenate(returns)
            perm = rng.permutation(len(observations))
            for b0 in range(0, len(perm), batch_size):
                idx = perm[b0: b0 + batch_size]
                obs_t = _stack(observations, idx, device)
                mask_t = torch.as_tensor(masks_np[idx], device=device)
                acc_t = torch.as_tensor(acc_np[idx], device=device)
                if hasattr(policy, "imitation_terms"):      # a policy with its own distribution
                    nll, hit, values = policy.imitation_terms(obs_t, mask_t, acc_t)
                else:
                    logits, values = logits_and_values(policy, obs_t)
                    nll, hit = accepted_nll(logits, mask_t, acc_t, action_components(policy.action_space))
                values = values.squeeze(-1)
                vmse = (values - torch.as_tensor(ret_np[idx], device=device)) ** 2
                loss = nll.mean() + value_coef * vmse.mean()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
                opt.step()
                k = len(idx)
                sums["loss"] += loss.item() * k
                sums["nll"] += nll.sum().item()
                sums["accuracy"] += hit.sum().item()
                sums["value_mse"] += vmse.sum().item()
                n_steps += k
        stats = {k: v / max(n_steps, 1) for k, v in sums.items()}
        stats.update(epoch=epoch + 1, steps=n_steps, seconds=time.perf_counter() - t0)
        history.append(stats)
        log(f"  pretrain epoch {epoch + 1}/{epochs}: nll {stats['nll']:.3f}, accuracy {stats['accuracy']:.3f}, "
            f"value mse {stats['value_mse']:.4f} ({n_steps} steps, {stats['seconds']:.0f} s)")
        if logger is not None:
            for k in ("loss", "nll", "accuracy", "value_mse"):
                logger.record(f"pretrain/{k}", stats[k])
            logger.dump(log_step_offset + epoch + 1)
        if on_epoch is not None:
            on_epoch(epoch + 1, stats)
    policy.set_training_mode(False)
    env.close()
    return history
