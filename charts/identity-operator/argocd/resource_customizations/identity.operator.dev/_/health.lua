-- Argo CD health check for every identity.operator.dev kind (Lua 5.1, as Argo CD runs it).
-- Every kind reports the same Ready condition, so one script serves them all: it sits in the
-- wildcard kind directory `_` of Argo CD's resource_customizations layout, and in argocd-cm
-- under the wildcard key `identity.operator.dev/*` of resource.customizations.
--
--   Healthy      Ready=True for the current generation
--   Progressing  not yet reconciled (no status, or a status for an older generation),
--                Ready=Unknown, a transient failure the operator retries by itself,
--                or being deleted
--   Degraded     Ready=False for a reason only a change can fix (spec, Secret, IdentityApi,
--                the identity system); unknown reasons count as such
--   Suspended    the identity.operator.dev/paused annotation stops all writes
local hs = {}

-- Reasons of Ready=False that clear without anyone acting: the operator retries them.
local transient = {
  RateLimited = true,            -- the identity API asked to slow down: retried after its delay
  IdentityApiError = true,       -- unreachable, timeout, 5xx: retried with backoff
  KubernetesError = true,        -- a Kubernetes API call failed: retried with backoff
  IdentityApiUnavailable = true, -- the connection's breaker is open: waits for its next attempt
}

local function find_condition(status, type)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c)
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

local meta = obj.metadata or {}
local generation = meta.generation
local status = obj.status
local ready = find_condition(status, "Ready")

if meta.annotations ~= nil and meta.annotations["identity.operator.dev/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Paused: the identity.operator.dev/paused annotation stops all writes"
  return hs
end

if meta.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted"
  return hs
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile"
  return hs
end

-- A condition is only news about the spec it was computed for.
local observed = ready.observedGeneration or status.observedGeneration
local stale = observed ~= generation
  or (status.observedGeneration ~= nil and status.observedGeneration ~= generation)
if generation ~= nil and stale then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. tostring(generation)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif ready.status == "False" and not transient[ready.reason] then
  hs.status = "Degraded"
  hs.message = describe(ready)
else
  hs.status = "Progressing"
  hs.message = describe(ready)
end
return hs
