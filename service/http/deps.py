"""Dependency providers: hand out the clients the lifespan opened, never build new ones."""

from litestar.datastructures import State

from service.graph import GraphMemory
from service.operations.operator_views import Operator
from service.privacy.data_rights import UserData
from service.resources import Resources
from service.settings import Settings
from service.store.audit import AuditLog
from service.store.jobs import JobQueue
from service.store.sessions import SessionStore

RESOURCES_KEY = "resources"


def resources_from(state: State) -> Resources:
    resources: Resources = state[RESOURCES_KEY]
    return resources


def provide_resources(state: State) -> Resources:
    return resources_from(state)


def provide_store(state: State) -> SessionStore:
    return resources_from(state).store


def provide_settings(state: State) -> Settings:
    return resources_from(state).settings


def provide_jobs(state: State) -> JobQueue:
    return resources_from(state).jobs


def provide_graph(state: State) -> GraphMemory:
    return resources_from(state).graph


def provide_operator(state: State) -> Operator:
    return resources_from(state).operator


def provide_audit(state: State) -> AuditLog:
    return resources_from(state).audit


def provide_user_data(state: State) -> UserData:
    return resources_from(state).user_data
