"""Model-agnostic stepwise EM: schedules, the engine, and convergence monitoring."""

from streamem.engine.family import Expectation, Family, NoCarry
from streamem.engine.monitor import ConvergenceMonitor, MonitorRecord
from streamem.engine.records import ArrayRecord
from streamem.engine.schedules import Constant, HalfLife, PowerDecay, Schedule, schedule_from_dict
from streamem.engine.stepwise import StepwiseEM, UpdateReport

__all__ = [
    "ArrayRecord",
    "Constant",
    "ConvergenceMonitor",
    "Expectation",
    "Family",
    "HalfLife",
    "MonitorRecord",
    "NoCarry",
    "PowerDecay",
    "Schedule",
    "StepwiseEM",
    "UpdateReport",
    "schedule_from_dict",
]
