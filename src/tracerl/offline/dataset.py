"""Trajectory datasets on disk, in Minari's format (HDF5 storage), written by Minari and read back with checks.

Layout of a dataset directory ``ROOT`` (Minari 0.5's local layout, so ``minari.MinariDataset(ROOT / "data")`` reads
it, and ``minari.load_dataset(ID)`` does when ``ROOT`` is ``$MINARI_DATASETS_PATH/ID``)::

    ROOT/data/metadata.json     Minari's metadata: dataset_id, minari_version, data_format "hdf5",
                                observation_space / action_space (Minari's JSON), env_spec (when the env has one),
                                total_episodes, total_steps, plus "tracerl": {format, env_id, env_kwargs,
                                policies: {label: episodes}, seed, n_envs}
    ROOT/data/main_data.hdf5    one group per episode, "episode_{i}", i = 0 .. total_episodes - 1:
        observations    [T + 1, *obs_shape]  every observation of the episode, the last one included
                        (Dict / Tuple spaces: a group per key / "_index_{i}", Minari's layout)
        actions         [T, *action_shape]   action t was taken on observation t
        rewards         float [T]            reward after action t
        terminations    bool [T]             True only at the last step, when the episode terminated
        truncations     bool [T]             True only at the last step, when it was cut (time limit)
        infos/KEY       [T + 1, ...]         entry 0: the reset info, entry t + 1: the info of step t
        infos/_KEY      bool [T + 1]         where KEY was present (gymnasium's vector-info masks); a value
                                             where the mask is False is a zero filler
        attrs           id, total_steps, policy (the recorder's label of the policy that acted), seed

No pickle anywhere: HDF5 arrays and JSON. Images are stored raw (``jpeg_encoding`` False), so a round trip is exact.
Reading (:func:`load_dataset`) uses h5py directly and checks the layout, every length, the flags (exactly one
episode end, at the last step), finite rewards and the spaces, raising :class:`~tracerl.errors.DatasetError` that
names the file and the entry (``episode_3/actions``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces

from tracerl.errors import ConfigError, DatasetError

FORMAT_NAME = "tracerl.trajectories"
"""``metadata["tracerl"]["format"]`` of datasets tracerl wrote."""
FORMAT_VERSION = 1
"""Version of the tracerl part of the metadata (the HDF5 layout is Minari's)."""
DATA_DIR = "data"
"""Sub-directory holding Minari's files (Minari's local layout ``<dataset>/data``)."""
METADATA_NAME = "metadata.json"
MAIN_NAME = "main_data.hdf5"
EPISODE_KEYS = ("observations", "actions", "rewards", "terminations", "truncations")
"""Datasets every episode group holds (``infos`` is optional)."""
DEFAULT_DATASET_ID = "tracerl/trajectories-v0"
"""Minari dataset id used when none is given (``namespace/name-vN``)."""


def _need_h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - the offline extra installs it
        raise ImportError("tracerl.offline needs h5py and minari: pip install 'tracerl[offline]'") from exc
    return h5py


def _need_minari() -> Any:
    try:
        import minari  # noqa: F401
        from minari.dataset.minari_storage import MinariStorage  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the offline extra installs it
        raise ImportError("writing a dataset needs minari: pip install 'tracerl[offline]'") from exc
    return minari


# ------------------------------------------------------------------------------------------------ episodes


@dataclass
class Episode:
    """One recorded episode (``T`` actions).

    ``observations`` has ``T + 1`` entries (the last is the observation after the last action); ``actions``,
    ``rewards``, ``terminations`` and ``truncations`` have ``T``. For Dict / Tuple spaces ``observations`` and
    ``actions`` are dicts / tuples of such arrays. ``infos[KEY]`` has ``T + 1`` entries (entry 0 the reset
    info, entry ``t + 1`` the info of step ``t``) and ``infos["_" + KEY]`` says where KEY was present.
    """

    observations: Any
    """Observations ``[T + 1, ...]`` (or a dict / tuple of them)."""
    actions: Any
    """Actions ``[T, ...]`` (or a dict / tuple of them)."""
    rewards: np.ndarray
    """float ``[T]``: reward after each action."""
    terminations: np.ndarray
    """bool ``[T]``: True at the last step if the episode terminated."""
    truncations: np.ndarray
    """bool ``[T]``: True at the last step if the episode was cut."""
    infos: dict[str, np.ndarray] = field(default_factory=dict)
    """KEY -> ``[T + 1, ...]`` values and ``"_" + KEY`` -> bool ``[T + 1]`` presence masks."""
    policy: str | None = None
    """Label of the policy that acted (the recorder's), or None when unknown."""
    id: int | None = None
    """Index of the episode in its dataset (None before it is written)."""
    seed: int | None = None
    """Seed of the ``reset`` that started it, when it had one."""

    def __len__(self) -> int:
        return int(len(self.rewards))

    @property
    def total_return(self) -> float:
        """Undiscounted sum of the rewards."""
        return float(np.sum(self.rewards, dtype=np.float64))

    @property
    def terminated(self) -> bool:
        return bool(self.terminations[-1])

    @property
    def truncated(self) -> bool:
        return bool(self.truncations[-1])

    def info(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``(values [T + 1], present [T + 1])`` of info KEY (all absent if the episode never had it)."""
        if key not in self.infos:
            return np.zeros(len(self) + 1), np.zeros(len(self) + 1, dtype=bool)
        return self.infos[key], self.infos.get("_" + key, np.ones(len(self) + 1, dtype=bool))

    @property
    def success(self) -> bool | None:
        """``info["success"]`` of the last step, or None when the last step did not report one."""
        values, present = self.info("success")
        return bool(values[-1]) if present[-1] else None


def returns_to_go(rewards: Any, gamma: float = 1.0) -> np.ndarray:
    """Returns-to-go ``R_t = sum_{k >= t} gamma^(k - t) r_k`` of one episode's rewards ``[T]`` (float64 ``[T]``).

    Decision Transformer conditions on the undiscounted form (``gamma = 1``): ``R_0`` is the episode's return and
    ``R_t - r_t = R_{t+1}``.
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    if not 0.0 <= gamma <= 1.0:
        raise ConfigError(f"returns_to_go: gamma={gamma!r} is invalid; it must be in [0, 1].")
    out = np.empty_like(r)
    acc = 0.0
    for t in range(len(r) - 1, -1, -1):
        acc = r[t] + gamma * acc
        out[t] = acc
    return out


# ------------------------------------------------------------------------------------------------ writing


def _env_spec_for(env_id: str | None, env_kwargs: Mapping[str, Any] | None) -> Any:
    """gymnasium's EnvSpec of a registered id with ``env_kwargs`` merged, or None (an env object, unknown id)."""
    if not isinstance(env_id, str):
        return None
    try:
        spec = gymnasium.spec(env_id)
    except Exception:  # an id gymnasium cannot resolve here: the dataset just has no env_spec
        return None
    from dataclasses import replace

    return replace(spec, kwargs={**dict(spec.kwargs or {}), **dict(env_kwargs or {})})


def _check_json(value: Any, where: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} must be JSON-serialisable: {exc}") from exc


def write_dataset(
    path: str | os.PathLike[str],
    episodes: Sequence[Episode],
    observation_space: spaces.Space[Any],
    action_space: spaces.Space[Any],
    env_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    dataset_id: str = DEFAULT_DATASET_ID,
    extra: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``episodes`` as a Minari dataset at ``path`` (a directory; the files go in ``path/data``).

    The files are written by Minari's own ``MinariStorage`` into a hidden directory beside ``path``, which then
    takes its place, so an interrupted write leaves no half dataset.

    Args:
        path: dataset directory. Must not exist unless ``overwrite`` (then it must be a dataset: nothing else is
            ever deleted).
        episodes: at least one :class:`Episode`.
        observation_space, action_space: the env's single spaces.
        env_id, env_kwargs: the env the episodes came from (its gymnasium EnvSpec goes into Minari's
            ``env_spec``, so ``MinariDataset.recover_environment()`` works; tracerl's own ids included).
        dataset_id: Minari's ``namespace/name-vN`` id.
        extra: more JSON entries for ``metadata["tracerl"]``.
        overwrite: replace an existing dataset at ``path``.

    Returns:
        ``path`` as a Path.
    """
    _need_h5py()
    _need_minari()
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.dataset.minari_storage import MinariStorage

    root = Path(path)
    if not episodes:
        raise ConfigError("write_dataset: episodes is empty; record at least one episode.")
    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"write_dataset: dataset_id={dataset_id!r} is invalid: {exc}") from exc
    if root.exists() or root.is_symlink():
        if not overwrite:
            raise ConfigError(f"write_dataset: {root} exists; pass overwrite=True (--overwrite) to replace it.")
        if not (root / DATA_DIR / METADATA_NAME).is_file():
            raise ConfigError(f"write_dataset: {root} exists and is not a dataset (no {DATA_DIR}/{METADATA_NAME}); "
                              "refusing to replace it.")
    tracerl_meta: dict[str, Any] = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                                    "env_id": env_id if isinstance(env_id, str) else None,
                                    "env_kwargs": dict(env_kwargs or {})}
    tracerl_meta.update(dict(extra or {}))
    _check_json(tracerl_meta, "write_dataset: env_kwargs / extra")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{secrets.token_hex(4)}"
    try:
        tmp.mkdir()
        storage = MinariStorage.new(tmp / DATA_DIR, observation_space=observation_space, action_space=action_space,
                                    env_spec=_env_spec_for(env_id, env_kwargs), data_format="hdf5",
                                    jpeg_encoding=False)
        buffers = []
        for i, ep in enumerate(episodes):
            _check_episode_shapes(ep, i)
            buffers.append(EpisodeBuffer(id=None, seed=ep.seed, observations=ep.observations, actions=ep.actions,
                                         rewards=np.asarray(ep.rewards, dtype=np.float64),
                                         terminations=np.asarray(ep.terminations, dtype=bool),
                                         truncations=np.asarray(ep.truncations, dtype=bool),
                                         infos=dict(ep.infos) if ep.infos else None))
        storage.update_episodes(buffers)
        storage.update_episode_metadata([{"policy": ep.policy or ""} for ep in episodes], range(len(episodes)))
        storage.update_metadata({"dataset_id": dataset_id, "minari_version": minari.__version__,
                                 "algorithm_name": "tracerl record", "tracerl": tracerl_meta})
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _check_episode_shapes(ep: Episode, index: int) -> None:
    T = len(ep)
    where = f"episodes[{index}]"
    if T < 1:
        raise ConfigError(f"write_dataset: {where} has no steps.")
    for name in ("terminations", "truncations"):
        if len(getattr(ep, name)) != T:
            raise ConfigError(f"write_dataset: {where}.{name} has {len(getattr(ep, name))} entries, expected {T}.")
    for key, value in ep.infos.items():
        if len(value) != T + 1:
            raise ConfigError(f"write_dataset: {where}.infos[{key!r}] has {len(value)} entries, expected T + 1 = {T + 1}.")


# ------------------------------------------------------------------------------------------------ reading


@dataclass
class TrajectoryDataset:
    """A dataset read by :func:`load_dataset`: every episode in memory, the spaces and the metadata."""

    path: Path
    """The dataset directory (the one holding ``data/``)."""
    episodes: list[Episode]
    """The episodes, in file order."""
    observation_space: spaces.Space[Any]
    action_space: spaces.Space[Any]
    metadata: dict[str, Any]
    """Minari's ``metadata.json`` as read (spaces as their JSON strings)."""

    def __len__(self) -> int:
        return len(self.episodes)

    def __getitem__(self, i: int) -> Episode:
        return self.episodes[i]

    def __iter__(self) -> Iterator[Episode]:
        return iter(self.episodes)

    @property
    def total_steps(self) -> int:
        return sum(len(ep) for ep in self.episodes)

    @property
    def dataset_id(self) -> str:
        return str(self.metadata.get("dataset_id", ""))

    @property
    def env_id(self) -> str | None:
        """The recorded env id (tracerl's metadata, else Minari's env_spec), or None."""
        meta = self.metadata.get("tracerl")
        if isinstance(meta, dict) and isinstance(meta.get("env_id"), str):
            return meta["env_id"]
        spec = self.metadata.get("env_spec")
        if isinstance(spec, str):
            try:
                return str(json.loads(spec).get("id"))
            except (ValueError, AttributeError):
                return None
        return None

    @property
    def env_kwargs(self) -> dict[str, Any]:
        meta = self.metadata.get("tracerl")
        return dict(meta.get("env_kwargs") or {}) if isinstance(meta, dict) else {}

    def returns(self) -> np.ndarray:
        """Every episode's return, float64 ``[N]``."""
        return np.array([ep.total_return for ep in self.episodes], dtype=np.float64)

    def policy_counts(self) -> dict[str, int]:
        """Episodes per policy label."""
        out: dict[str, int] = {}
        for ep in self.episodes:
            out[ep.policy or ""] = out.get(ep.policy or "", 0) + 1
        return out

    def filter(self, keep: Iterable[bool]) -> "TrajectoryDataset":
        """A dataset with the episodes where ``keep`` is True (same spaces and metadata)."""
        eps = [ep for ep, k in zip(self.episodes, keep) if k]
        return TrajectoryDataset(self.path, eps, self.observation_space, self.action_space, dict(self.metadata))


def _data_dir(path: Path) -> Path:
    if (path / METADATA_NAME).is_file() and path.name == DATA_DIR:
        return path
    return path / DATA_DIR


def _read_metadata(data_dir: Path, root: Path) -> dict[str, Any]:
    meta_path = data_dir / METADATA_NAME
    if not root.exists():
        raise DatasetError("no such dataset", path=str(root))
    if not meta_path.is_file():
        raise DatasetError(f"not a dataset: {DATA_DIR}/{METADATA_NAME} is missing", path=str(root))
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"unreadable metadata: {exc}", path=str(meta_path)) from exc
    if not isinstance(meta, dict):
        raise DatasetError("metadata is not a JSON object", path=str(meta_path))
    fmt = meta.get("data_format")
    if fmt != "hdf5":
        raise DatasetError(f"data_format={fmt!r} is not supported (tracerl reads Minari's 'hdf5' storage)",
                           path=str(meta_path), entry="data_format")
    for key in ("total_episodes", "total_steps"):
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DatasetError(f"{key}={value!r} is not a count", path=str(meta_path), entry=key)
    return meta


def _read_space(meta: Mapping[str, Any], key: str, meta_path: str) -> spaces.Space[Any]:
    from minari.serialization import deserialize_space

    text = meta.get(key)
    if not isinstance(text, str):
        raise DatasetError(f"{key} is missing (tracerl needs the spaces in the metadata)", path=meta_path, entry=key)
    try:
        return deserialize_space(text)
    except Exception as exc:  # Minari's deserializer raises assorted errors on a malformed description
        raise DatasetError(f"{key} is not a space Minari can read: {exc}", path=meta_path, entry=key) from exc


def _is_image(space: Any) -> bool:
    from minari.dataset.minari_storage import is_image_space

    return bool(is_image_space(space))


def _has_jpeg_space(space: Any) -> bool:
    if isinstance(space, spaces.Dict):
        return any(_has_jpeg_space(s) for s in space.spaces.values())
    if isinstance(space, spaces.Tuple):
        return any(_has_jpeg_space(s) for s in space.spaces)
    return _is_image(space)


def _read_leaf(node: Any, space: Any, length: int, where: str, file: str) -> Any:
    h5py = _need_h5py()
    if isinstance(space, spaces.Dict):
        if not isinstance(node, h5py.Group):
            raise DatasetError("expected a group (Dict space)", path=file, entry=where)
        missing = set(space.spaces) - set(node.keys())
        extra = set(node.keys()) - set(space.spaces)
        if missing or extra:
            raise DatasetError(f"keys {sorted(node.keys())} do not match the space's {sorted(space.spaces)}",
                               path=file, entry=where)
        return {k: _read_leaf(node[k], s, length, f"{where}/{k}", file) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        if not isinstance(node, h5py.Group) or len(node.keys()) != len(space.spaces):
            raise DatasetError(f"expected a group of {len(space.spaces)} '_index_i' entries (Tuple space)",
                               path=file, entry=where)
        out = []
        for i, s in enumerate(space.spaces):
            if f"_index_{i}" not in node:
                raise DatasetError(f"'_index_{i}' is missing", path=file, entry=where)
            out.append(_read_leaf(node[f"_index_{i}"], s, length, f"{where}/_index_{i}", file))
        return tuple(out)
    if not isinstance(node, h5py.Dataset):
        raise DatasetError("expected an array", path=file, entry=where)
    shape = tuple(getattr(space, "shape", None) or ())
    if node.shape != (length, *shape):
        raise DatasetError(f"shape {node.shape} does not match {(length, *shape)} ({length} entries of the space's "
                           f"shape {shape})", path=file, entry=where)
    value = node[()]
    if not np.issubdtype(value.dtype, np.number) and value.dtype != np.bool_:
        raise DatasetError(f"dtype {value.dtype} is not numeric", path=file, entry=where)
    if isinstance(space, spaces.Discrete):
        lo, hi = int(space.start), int(space.start + space.n)
        if value.size and (not np.all(np.isfinite(value)) or value.min() < lo or value.max() >= hi):
            raise DatasetError(f"values outside the Discrete space [{lo}, {hi})", path=file, entry=where)
    elif isinstance(space, spaces.Box) and value.size and np.issubdtype(value.dtype, np.floating):
        if np.isnan(value).any():
            raise DatasetError("NaN values", path=file, entry=where)
    return value


def _read_infos(node: Any, length: int, where: str, file: str) -> dict[str, np.ndarray]:
    h5py = _need_h5py()
    out: dict[str, np.ndarray] = {}
    if not isinstance(node, h5py.Group):
        raise DatasetError("infos is not a group", path=file, entry=where)
    for key, value in node.items():
        if not isinstance(value, h5py.Dataset):
            continue  # nested info dicts: not used by tracerl, left to Minari's reader
        if value.shape[:1] != (length,):
            raise DatasetError(f"has {value.shape[:1]} entries, expected T + 1 = {length}", path=file,
                               entry=f"{where}/{key}")
        out[key] = value[()]
    for key in list(out):
        if key.startswith("_") and key[1:] in out and out[key].dtype != np.bool_:
            raise DatasetError(f"mask dtype {out[key].dtype} is not bool", path=file, entry=f"{where}/{key}")
    return out


def _read_flags(group: Any, T: int, where: str, file: str) -> tuple[np.ndarray, np.ndarray]:
    flags = []
    for key in ("terminations", "truncations"):
        node = group[key]
        if node.shape != (T,):
            raise DatasetError(f"shape {node.shape}, expected ({T},) like rewards", path=file, entry=f"{where}/{key}")
        value = node[()]
        if value.dtype != np.bool_:
            if not np.isin(value, (0, 1)).all():
                raise DatasetError(f"flags must be booleans, got dtype {value.dtype}", path=file, entry=f"{where}/{key}")
            value = value.astype(bool)
        flags.append(value)
    term, trunc = flags
    done = term | trunc
    if not done[-1]:
        raise DatasetError("the last step is neither terminated nor truncated (an incomplete episode)", path=file,
                           entry=where)
    early = np.flatnonzero(done[:-1])
    if early.size:
        raise DatasetError(f"episode ends inside the episode at step {int(early[0])} (only the last step may end it)",
                           path=file, entry=where)
    return term, trunc


def _read_episode(group: Any, index: int, obs_space: Any, act_space: Any, file: str) -> Episode:
    h5py = _need_h5py()
    where = f"episode_{index}"
    if not isinstance(group, h5py.Group):
        raise DatasetError("not a group", path=file, entry=where)
    for key in EPISODE_KEYS:
        if key not in group:
            raise DatasetError(f"'{key}' is missing", path=file, entry=where)
    rewards_node = group["rewards"]
    if not isinstance(rewards_node, h5py.Dataset) or rewards_node.ndim != 1 or rewards_node.shape[0] < 1:
        raise DatasetError("rewards must be a non-empty 1-d array", path=file, entry=f"{where}/rewards")
    rewards = rewards_node[()]
    if not np.issubdtype(rewards.dtype, np.number) or not np.all(np.isfinite(rewards)):
        raise DatasetError("rewards must be finite numbers", path=file, entry=f"{where}/rewards")
    T = int(rewards.shape[0])
    term, trunc = _read_flags(group, T, where, file)
    observations = _read_leaf(group["observations"], obs_space, T + 1, f"{where}/observations", file)
    actions = _read_leaf(group["actions"], act_space, T, f"{where}/actions", file)
    infos = _read_infos(group["infos"], T + 1, f"{where}/infos", file) if "infos" in group else {}
    attrs = dict(group.attrs)
    steps = attrs.get("total_steps")
    if steps is not None and int(steps) != T:
        raise DatasetError(f"attribute total_steps={int(steps)} but rewards has {T} entries", path=file, entry=where)
    policy = attrs.get("policy")
    if isinstance(policy, bytes):
        policy = policy.decode("utf-8", "replace")
    seed = attrs.get("seed")
    return Episode(observations=observations, actions=actions, rewards=rewards.astype(np.float64),
                   terminations=term, truncations=trunc, infos=infos,
                   policy=str(policy) if policy not in (None, "") else None, id=index,
                   seed=int(seed) if seed is not None else None)


def load_dataset(path: str | os.PathLike[str]) -> TrajectoryDataset:
    """Read and check a Minari HDF5 dataset (one tracerl wrote, or any Minari 0.4/0.5 HDF5 dataset).

    Args:
        path: the dataset directory (holding ``data/``), or its ``data`` directory itself.

    Raises:
        DatasetError: naming the file and entry, when a file is missing or unreadable, the storage is not HDF5,
            a space is missing or malformed, images are JPEG-encoded (lossy; not read), the episode count
            differs from the metadata, an episode misses an array, has inconsistent lengths (observations
            ``T + 1``, actions / rewards / flags ``T``, infos ``T + 1``), values outside a Discrete space, NaN
            observations or non-finite rewards, or an end flag anywhere but at (and missing from) its last step.
    """
    h5py = _need_h5py()
    _need_minari()
    given = Path(path)
    data_dir = _data_dir(given)
    root = data_dir.parent if data_dir != given else given
    meta = _read_metadata(data_dir, given)
    meta_path = str(data_dir / METADATA_NAME)
    obs_space = _read_space(meta, "observation_space", meta_path)
    act_space = _read_space(meta, "action_space", meta_path)
    if bool(meta.get("jpeg_encoding", True)) and (_has_jpeg_space(obs_space) or _has_jpeg_space(act_space)):
        raise DatasetError("images are JPEG-encoded (lossy); tracerl reads raw arrays only", path=meta_path,
                           entry="jpeg_encoding")
    main = data_dir / MAIN_NAME
    if not main.is_file():
        raise DatasetError(f"{MAIN_NAME} is missing", path=str(data_dir))
    file = str(main)
    try:
        handle = h5py.File(main, "r")
    except OSError as exc:
        raise DatasetError(f"not a readable HDF5 file: {exc}", path=file) from exc
    episodes = []
    try:
        with handle:
            names = sorted(handle.keys())
            n = int(meta["total_episodes"])
            expected = sorted(f"episode_{i}" for i in range(n))
            if names != expected:
                missing = sorted(set(expected) - set(names))[:3]
                extra = sorted(set(names) - set(expected))[:3]
                raise DatasetError(f"the file has {len(names)} groups, metadata says total_episodes={n} (missing "
                                   f"{missing}, unexpected {extra})", path=file)
            for i in range(n):
                episodes.append(_read_episode(handle[f"episode_{i}"], i, obs_space, act_space, file))
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:  # h5py reports corrupt data with these
        raise DatasetError(f"corrupt HDF5 data: {exc}", path=file) from exc
    steps = sum(len(ep) for ep in episodes)
    if steps != int(meta["total_steps"]):
        raise DatasetError(f"the episodes hold {steps} steps, metadata says total_steps={meta['total_steps']}",
                           path=meta_path, entry="total_steps")
    return TrajectoryDataset(root, episodes, obs_space, act_space, meta)




def slice_leaves(value: Any, index: Any) -> Any:
    """``value[index]`` for an array or a dict / tuple of arrays."""
    if isinstance(value, dict):
        return {k: slice_leaves(v, index) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(slice_leaves(v, index) for v in value)
    return np.asarray(value)[index]


__all__ = [
    "DEFAULT_DATASET_ID",
    "Episode",
    "TrajectoryDataset",
    "load_dataset",
    "returns_to_go",
    "write_dataset",
]
