"""The OpenTelemetry GenAI semantic conventions Cadre uses, named once.

Spans and metrics name their attributes through these constants (``gen_ai.AGENT_NAME``), so a
change of convention is one edit here, and a typo is a NameError rather than a silent new
attribute. See https://opentelemetry.io/docs/specs/semconv/gen-ai/.
"""

# Span attributes
AGENT_DESCRIPTION = "gen_ai.agent.description"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
INPUT_MESSAGES = "gen_ai.input.messages"
OPERATION_NAME = "gen_ai.operation.name"
OUTPUT_MESSAGES = "gen_ai.output.messages"
PROVIDER_NAME = "gen_ai.provider.name"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_STREAM = "gen_ai.request.stream"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
TOKEN_TYPE = "gen_ai.token.type"
TOOL_DESCRIPTION = "gen_ai.tool.description"
TOOL_NAME = "gen_ai.tool.name"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
WORKFLOW_NAME = "gen_ai.workflow.name"

# Metrics
CLIENT_OPERATION_DURATION = "gen_ai.client.operation.duration"
CLIENT_TOKEN_USAGE = "gen_ai.client.token.usage"

# Operation names (the value of OPERATION_NAME)
CHAT = "chat"
INVOKE_AGENT = "invoke_agent"
INVOKE_WORKFLOW = "invoke_workflow"
EXECUTE_TOOL = "execute_tool"
RETRIEVAL = "retrieval"
