-- Argo CD health check for bluegreen.dev/BlueGreenApp, installed as
-- resource.customizations.health.bluegreen.dev_BlueGreenApp (see argocd-cm-patch.yaml).
-- The operator publishes phase, message and observedGeneration; this script only maps them.
hs = {}

-- Argo CD runs this in a sandbox that opens only the base, table and package libraries
-- and a safe part of os: no `string`, no `math`. tostring() is base, and Argo CD's Lua
-- (gopher-lua) prints a whole number without a decimal part ("3", not "3.0").
local function as_text(number)
  if type(number) == "number" then
    return tostring(number)
  end
  return "?"
end

local status = obj.status or {}
local generation = obj.metadata.generation

-- A status written for an older spec (or none at all) says nothing about the current spec.
if status.observedGeneration == nil or status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. as_text(generation)
  return hs
end

local phase = status.phase
local message = status.message or ""

if phase == "Paused" then
  -- A ready preview waiting for spec.promote is a deliberate pause, not a failure.
  hs.status = "Suspended"
  hs.message = message
elseif phase == "Healthy" or phase == "Progressing" or phase == "Degraded" then
  hs.status = phase
  hs.message = message
elseif phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a phase"
else
  -- A phase newer than this script: not a reason to alarm anyone, but say so.
  hs.status = "Progressing"
  hs.message = "Unknown phase " .. tostring(phase) .. ": " .. message
end
return hs
