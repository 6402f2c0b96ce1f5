-- Argo CD health of a Shopfloor VirtualPLC (shopfloor.io/v1alpha1), read from the status the operator writes.
-- Healthy: Running and Ready. Degraded: Stalled (a faulted program, a rolled-back update, an invalid program or a
-- checksum mismatch). Progressing: Pending, Scheduling, Starting, Updating, or a spec not observed yet.
-- Only Lua's base and table libraries are used, so it runs without resource.customizations.useOpenLibs.
local hs = {status = "Progressing", message = "Waiting for the operator to report the PLC's status"}
local status = obj.status
if status == nil or status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation or 0
if (status.observedGeneration or 0) < generation then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
local conditions = {}
for _, condition in ipairs(status.conditions) do
  conditions[condition.type] = condition
end
local phase = status.phase or "Pending"
local stalled = conditions["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  local why = phase
  if stalled.reason ~= phase then
    why = phase .. " (" .. stalled.reason .. ")"
  end
  hs.message = why .. ": " .. (stalled.message or "")
  return hs
end
local ready = conditions["Ready"]
if phase == "Running" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  local revision = (status.program or {}).activeRevision or ""
  hs.message = "Running on " .. (status.nodeName or "") .. ", revision " .. revision
  return hs
end
local scheduled = conditions["Scheduled"]
if phase == "Scheduling" and scheduled ~= nil and scheduled.status == "False" and scheduled.message ~= "" then
  hs.message = "Scheduling: " .. scheduled.message
elseif phase == "Updating" then
  hs.message = "Updating to revision " .. ((status.program or {}).deployedRevision or "")
else
  hs.message = phase
end
return hs
