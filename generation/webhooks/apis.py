"""`/api/v1/me/webhooks`: the caller's webhook endpoints and their delivery logs (API.md
"Videos API", docs/webhooks.md). Another user's endpoint or delivery answers 404."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.core.pagination import page_of, paginated_response
from config.core.schema import error_responses

from . import selectors, services
from .serializers import (
    WebhookDeliveryOut,
    WebhookEndpointIn,
    WebhookEndpointOut,
    WebhookEndpointSecretOut,
)

ERR = error_responses(400, 401, 404, 409)


class WebhooksApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(
        operation_id="webhooks_list",
        responses={200: page_of(WebhookEndpointOut)},
        description="The caller's webhook endpoints, newest first (secrets are not shown).",
    )
    def get(self, request: Request) -> Response:
        return paginated_response(
            self, request, selectors.webhook_endpoints_of(user=request.user), WebhookEndpointOut
        )

    @extend_schema(
        operation_id="webhooks_create",
        request=WebhookEndpointIn,
        responses={201: WebhookEndpointSecretOut, 400: ERR[400], 409: ERR[409]},
        description="Registers an endpoint for video events; the answer carries its signing "
        "`secret`, shown only now. A URL on a private, loopback or link-local address is 400 "
        "`webhook_url_not_allowed`; past RIFF_WEBHOOKS_PER_USER endpoints, 409 "
        "`too_many_webhooks`.",
    )
    def post(self, request: Request) -> Response:
        payload = WebhookEndpointIn(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint = services.webhook_endpoint_create(user=request.user, **payload.validated_data)
        return Response(WebhookEndpointSecretOut(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookApi(APIView):
    @extend_schema(
        operation_id="webhooks_delete",
        responses={204: None, 404: ERR[404]},
        description="Deletes the endpoint and its delivery log; nothing more is sent to it.",
    )
    def delete(self, request: Request, webhook_id) -> Response:
        endpoint = selectors.webhook_endpoint_of(user=request.user, webhook_id=webhook_id)
        services.webhook_endpoint_delete(endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookRotateApi(APIView):
    @extend_schema(
        operation_id="webhooks_rotate",
        request=None,
        responses={200: WebhookEndpointSecretOut, 404: ERR[404]},
        description="A new signing secret (in the answer). The previous one keeps signing "
        "next to it for RIFF_WEBHOOK_ROTATION_GRACE_SECONDS (24 h by default).",
    )
    def post(self, request: Request, webhook_id) -> Response:
        endpoint = selectors.webhook_endpoint_of(user=request.user, webhook_id=webhook_id)
        endpoint = services.webhook_secret_rotate(endpoint=endpoint)
        return Response(WebhookEndpointSecretOut(endpoint).data)


class WebhookDeliveriesApi(APIView):
    pagination_ordering = ("-created_at", "-id")

    @extend_schema(
        operation_id="webhook_deliveries_list",
        responses={200: page_of(WebhookDeliveryOut), 404: ERR[404]},
        description="The endpoint's delivery log, newest first.",
    )
    def get(self, request: Request, webhook_id) -> Response:
        endpoint = selectors.webhook_endpoint_of(user=request.user, webhook_id=webhook_id)
        return paginated_response(
            self, request, selectors.webhook_deliveries_of(endpoint=endpoint), WebhookDeliveryOut
        )


class WebhookRedeliverApi(APIView):
    @extend_schema(
        operation_id="webhook_delivery_redeliver",
        request=None,
        responses={202: WebhookDeliveryOut, 404: ERR[404], 409: ERR[409]},
        description="Sends a succeeded or failed delivery again now, with the same `webhook-id`. "
        "A delivery still pending is 409 `invalid_transition`.",
    )
    def post(self, request: Request, webhook_id, delivery_id) -> Response:
        endpoint = selectors.webhook_endpoint_of(user=request.user, webhook_id=webhook_id)
        delivery = selectors.webhook_delivery_of(endpoint=endpoint, delivery_id=delivery_id)
        delivery = services.webhook_redeliver(delivery=delivery)
        return Response(WebhookDeliveryOut(delivery).data, status=status.HTTP_202_ACCEPTED)
