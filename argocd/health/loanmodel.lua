-- Argo CD health of a LoanModel (loanops.io/v1alpha1), from the status the
-- operator writes (operator/ and crds/loanmodels.loanops.io.yaml):
--   Degraded     the phase is Failed, or the latest training failed
--                (condition Trained False, reason TrainingFailed); checked
--                first, so a failed retraining shows even while an older
--                champion is still served;
--   Healthy      condition Ready is True and the status describes the
--                current generation of the spec;
--   Progressing  anything else: no status yet, training, awaiting approval,
--                rolling, or a status that still describes an older spec.
local health = {}

local function find_condition(conditions, wanted)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == wanted then
      return condition
    end
  end
  return nil
end

local function describe(condition, fallback)
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return fallback
end

if obj.status == nil then
  health.status = "Progressing"
  health.message = "Waiting for the operator to report a status."
  return health
end

local phase = obj.status.phase or "Pending"
local ready = find_condition(obj.status.conditions, "Ready")
local trained = find_condition(obj.status.conditions, "Trained")

local training_failed = trained ~= nil and trained.status == "False"
  and trained.reason == "TrainingFailed"
if phase == "Failed" or training_failed then
  health.status = "Degraded"
  health.message = describe(trained, describe(ready, "The LoanModel failed."))
  return health
end

local current = obj.metadata ~= nil and obj.status.observedGeneration ~= nil
  and obj.status.observedGeneration == obj.metadata.generation
if ready ~= nil and ready.status == "True" and current then
  health.status = "Healthy"
  health.message = describe(ready, "The champion is served.")
  return health
end

health.status = "Progressing"
if not current then
  health.message = "The operator has not yet handled the latest spec (phase " .. phase .. ")."
else
  health.message = describe(ready, "Phase " .. phase .. ".")
end
return health
