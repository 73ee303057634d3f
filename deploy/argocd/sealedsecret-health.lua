-- Argo CD health check for bitnami.com/SealedSecret (Sealbox's controller and Bitnami's).
-- Unlike Argo CD's built-in check, it reads the Synced condition only once the controller has
-- processed the current spec: while status.observedGeneration < metadata.generation the
-- condition describes an older spec, so a new, perhaps unsealable, spec would show Healthy.
-- Install: deploy/argocd/README.md. Tests: tests/tests/argocd.rs.
local health = {}

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  health.status = "Progressing"
  health.message = "Pending deletion"
  local finalizers = obj.metadata.finalizers
  if finalizers ~= nil and #finalizers > 0 then
    health.message = health.message .. "; blocked by finalizers: " .. table.concat(finalizers, ", ")
  end
  return health
end

local status = obj.status
local generation = obj.metadata and obj.metadata.generation
local observed = status and status.observedGeneration
-- A controller that writes no observedGeneration (Bitnami's before v0.13) leaves only the
-- condition to go by.
if generation ~= nil and observed ~= nil and observed < generation then
  health.status = "Progressing"
  -- %.0f: Argo CD's Lua (gopher-lua) and Lua 5.4 print whole numbers alike this way.
  health.message = "Waiting for the controller to unseal generation " .. string.format("%.0f", generation)
    .. " (it has processed " .. string.format("%.0f", observed) .. ")"
  return health
end

if status ~= nil and status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Synced" then
      if condition.status == "True" then
        health.status = "Healthy"
        health.message = condition.message or ""
        return health
      elseif condition.status == "False" then
        health.status = "Degraded"
        health.message = condition.message or ""
        return health
      end
    end
  end
end

health.status = "Progressing"
health.message = "Waiting for Sealed Secret to be decrypted"
return health
