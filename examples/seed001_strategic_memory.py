"""Seed 001's training cell, unchanged apart from its imports: the strategic memory agent on the delayed-cue task.

    .venv/bin/python examples/seed001_strategic_memory.py

Trains for 16 x 2500 = 40,000 env steps (about 15 s on one CPU core), prints the seed's log table, then
evaluates on 200 held-out episodes.
"""

from tracerl import TraceRL, MemoryTaskEnv, StrategicMemoryBuffer, StrategicMemoryTransformerPolicy
from tracerl import CueAuxModule, ConfidenceAuxModule  # noqa: F401  (the seed's optional cell)

# SETUP ===================================
DELAY = 16
MEM_DIM = 32
N_EPISODES = 2500
N_MEMORIES = 16

AGENT_KWARGS = dict(
    device="cpu",
    verbose=0,
    lam=0.95,
    gamma=0.99,
    ent_coef=0.01,
    learning_rate=1e-3,

)
MEMORY_AGENT_KWARGS=dict(
    her=False,
    reward_norm=False,
    aux_modules=None,

    intrinsic_expl=True,
    intrinsic_eta=0.01,

    use_rnd=True,
    rnd_emb_dim=32,
    rnd_lr=1e-3,
)

# HELPERS =================================
def total_timesteps(delay,n_episodes):
    return delay * n_episodes

# ENVIRONMENT =============================
env = MemoryTaskEnv(delay=DELAY, difficulty=0)

# MEMORY BUFFER ===========================
memory = StrategicMemoryBuffer(
    obs_dim=env.observation_space.shape[0],
    action_dim=1,          # For Discrete(2)
    mem_dim=MEM_DIM,
    max_entries=N_MEMORIES,
    device="cpu"
)

# POLICY NETWORK (use class) ==============
policy = StrategicMemoryTransformerPolicy

# (optional) AUXILIARY MODULES ============
"""
aux_modules = [
    CueAuxModule(feat_dim=MEM_DIM*2, n_classes=2),
    ConfidenceAuxModule(feat_dim=MEM_DIM*2)
]
"""

# AGENT SETUP =============================
agent = TraceRL(
    policy_class=policy,
    env=env,
    memory=memory,
    memory_learn_retention=True,
    memory_retention_coef=0.01,
    # aux_modules=aux_modules,
    device="cpu",
    verbose=1,
    lam=0.95,
    gamma=0.99,
    ent_coef=0.01,
    learning_rate=1e-3,

    **MEMORY_AGENT_KWARGS
)

# TRAIN THE AGENT =========================
agent.learn(
    total_timesteps=total_timesteps(DELAY, N_EPISODES),
    log_interval=250
)

if __name__ == "__main__":
    from tracerl.evaluation import evaluate

    result = evaluate(agent, "tracerl/CueDelay-v0", 200, env_kwargs={"delay": DELAY, "difficulty": 0}, seed=10_000)
    print(f"held-out: success {result.success_rate:.1%}, mean reward {result.mean_return:+.3f}")
