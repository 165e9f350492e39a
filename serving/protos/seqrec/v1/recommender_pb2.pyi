from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ItemSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ITEM_SOURCE_UNSPECIFIED: _ClassVar[ItemSource]
    ITEM_SOURCE_TORCH: _ClassVar[ItemSource]
    ITEM_SOURCE_TRANSITIONS: _ClassVar[ItemSource]
    ITEM_SOURCE_POPULARITY: _ClassVar[ItemSource]

class ServingPath(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVING_PATH_UNSPECIFIED: _ClassVar[ServingPath]
    SERVING_PATH_MODEL: _ClassVar[ServingPath]
    SERVING_PATH_POPULARITY: _ClassVar[ServingPath]
    SERVING_PATH_FEATURE_STORE_DOWN: _ClassVar[ServingPath]
    SERVING_PATH_COLD_START: _ClassVar[ServingPath]
ITEM_SOURCE_UNSPECIFIED: ItemSource
ITEM_SOURCE_TORCH: ItemSource
ITEM_SOURCE_TRANSITIONS: ItemSource
ITEM_SOURCE_POPULARITY: ItemSource
SERVING_PATH_UNSPECIFIED: ServingPath
SERVING_PATH_MODEL: ServingPath
SERVING_PATH_POPULARITY: ServingPath
SERVING_PATH_FEATURE_STORE_DOWN: ServingPath
SERVING_PATH_COLD_START: ServingPath

class RecommendRequest(_message.Message):
    __slots__ = ("session_id", "k", "recent_item_ids", "excluded_item_ids", "filters", "request_id", "purchased_item_ids")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    RECENT_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASED_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    k: int
    recent_item_ids: _containers.RepeatedScalarFieldContainer[str]
    excluded_item_ids: _containers.RepeatedScalarFieldContainer[str]
    filters: Filters
    request_id: str
    purchased_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., k: _Optional[int] = ..., recent_item_ids: _Optional[_Iterable[str]] = ..., excluded_item_ids: _Optional[_Iterable[str]] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., request_id: _Optional[str] = ..., purchased_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Filters(_message.Message):
    __slots__ = ("categories",)
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, categories: _Optional[_Iterable[str]] = ...) -> None: ...

class ScoredItem(_message.Message):
    __slots__ = ("item_id", "score", "torch_score", "river_score", "sources")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TORCH_SCORE_FIELD_NUMBER: _ClassVar[int]
    RIVER_SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    torch_score: float
    river_score: float
    sources: _containers.RepeatedScalarFieldContainer[ItemSource]
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ..., torch_score: _Optional[float] = ..., river_score: _Optional[float] = ..., sources: _Optional[_Iterable[_Union[ItemSource, str]]] = ...) -> None: ...

class ModelVersions(_message.Message):
    __slots__ = ("torch_version", "river_version", "river_events_learned")
    TORCH_VERSION_FIELD_NUMBER: _ClassVar[int]
    RIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    RIVER_EVENTS_LEARNED_FIELD_NUMBER: _ClassVar[int]
    torch_version: str
    river_version: int
    river_events_learned: int
    def __init__(self, torch_version: _Optional[str] = ..., river_version: _Optional[int] = ..., river_events_learned: _Optional[int] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("items", "path", "fallback", "fallback_reason", "model_versions", "feature_age_ms", "request_id")
    class FeatureAgeMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_AGE_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    path: ServingPath
    fallback: bool
    fallback_reason: str
    model_versions: ModelVersions
    feature_age_ms: _containers.ScalarMap[str, int]
    request_id: str
    def __init__(self, items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., path: _Optional[_Union[ServingPath, str]] = ..., fallback: bool = ..., fallback_reason: _Optional[str] = ..., model_versions: _Optional[_Union[ModelVersions, _Mapping]] = ..., feature_age_ms: _Optional[_Mapping[str, int]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "session_id", "user_id", "item_id", "event_type", "event_time", "category", "price")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    session_id: str
    user_id: str
    item_id: str
    event_type: str
    event_time: int
    category: str
    price: float
    def __init__(self, event_id: _Optional[str] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., event_type: _Optional[str] = ..., event_time: _Optional[int] = ..., category: _Optional[str] = ..., price: _Optional[float] = ...) -> None: ...

class SendEventRequest(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: Event
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ...) -> None: ...

class SendEventResponse(_message.Message):
    __slots__ = ("topic", "partition", "offset")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    topic: str
    partition: int
    offset: int
    def __init__(self, topic: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...
