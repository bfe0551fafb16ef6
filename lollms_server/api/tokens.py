"""``/api/v1/tokenize``, ``/detokenize`` and ``/count_tokens``."""

from __future__ import annotations

from lollms_server.api.deps import BindingManagerDep, ConfigDep, protected_router
from lollms_server.api.errors import error_responses
from lollms_server.api.models import (
    CountTokensRequest,
    CountTokensResponse,
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
)
from lollms_server.core import tokens

router = protected_router()
_ERRORS = error_responses(400, 404, 422, 501, 503)


@router.post("/tokenize", response_model=TokenizeResponse, responses=_ERRORS, summary="Text to token ids")
async def tokenize(body: TokenizeRequest, manager: BindingManagerDep, config: ConfigDep) -> TokenizeResponse:
    name = config.binding_for("ttt", body.binding_name)
    ids = await tokens.tokenize(
        manager, name, body.text, body.add_bos, body.add_eos, body.model_name, config.input_limits
    )
    return TokenizeResponse(tokens=ids, count=len(ids))


@router.post("/detokenize", response_model=DetokenizeResponse, responses=_ERRORS, summary="Token ids to text")
async def detokenize(body: DetokenizeRequest, manager: BindingManagerDep, config: ConfigDep) -> DetokenizeResponse:
    name = config.binding_for("ttt", body.binding_name)
    text = await tokens.detokenize(manager, name, body.tokens, body.model_name, config.input_limits)
    return DetokenizeResponse(text=text)


@router.post("/count_tokens", response_model=CountTokensResponse, responses=_ERRORS, summary="Count tokens")
async def count_tokens(body: CountTokensRequest, manager: BindingManagerDep, config: ConfigDep) -> CountTokensResponse:
    name = config.binding_for("ttt", body.binding_name)
    ids = await tokens.tokenize(
        manager, name, body.text, body.add_bos, body.add_eos, body.model_name, config.input_limits
    )
    return CountTokensResponse(count=len(ids))
